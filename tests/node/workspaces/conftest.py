"""Fixtures of the workspace tests."""

from __future__ import annotations

import pytest

from tests.fixtures.passwords import use_cheap_password_hashing


@pytest.fixture(autouse=True)
def _cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap Argon2 parameters for these tests (see tests/fixtures/passwords.py)."""
    use_cheap_password_hashing(monkeypatch)
