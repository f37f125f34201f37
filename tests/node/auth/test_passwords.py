"""Passwords are hashed with Argon2id at argon2-cffi's default (RFC 9106 low-memory) cost."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from node.auth import passwords


@pytest.fixture
def production_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    # Undo this directory's autouse cheap hasher.
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher())


def test_hash_is_argon2id_with_the_production_cost(production_hasher: None) -> None:
    stored = passwords.hash_password("correct horse")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert passwords.verify_password(stored, "correct horse")
    assert not passwords.verify_password(stored, "wrong horse")


def test_no_hash_never_verifies() -> None:
    assert not passwords.verify_password(None, "not-a-real-password")


def test_a_missing_user_costs_a_hash_at_the_hashers_own_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No hash (no such user) is still verified against a hash of the hasher's own
    parameters, so that timing does not tell which usernames exist."""
    verified: list[str] = []

    class Recording(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002
            verified.append(str(hash))
            return super().verify(hash, password)

    monkeypatch.setattr(passwords, "_hasher", Recording())  # the production parameters
    assert not passwords.verify_password(None, "guess")
    assert len(verified) == 1 and verified[0].startswith("$argon2id$v=19$m=65536,t=3,p=4$")
