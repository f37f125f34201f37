"""Access tokens verified once (`node.auth.tokens.decode_token`): a token sent again is
answered from the verified set, which never outlives the token's expiry, never serves
another secret or token type, and stays bounded."""

from __future__ import annotations

import time

import jwt
import pytest

from marketplace.errors import InvalidToken, TokenExpired
from node.auth import tokens
from node.auth.tokens import decode_token, encode_token

SECRET = "a-node-secret-of-at-least-32-characters"


def _token(ttl: int = 60, secret: str = SECRET, token_type: str = "access") -> str:
    token, _ = encode_token(
        secret, user_id=7, subject="0xabc", token_type=token_type, ttl_seconds=ttl
    )
    return token


def test_a_token_sent_again_is_not_verified_again(monkeypatch: pytest.MonkeyPatch) -> None:
    token = _token()
    first = decode_token(SECRET, token, "access")
    calls = []
    monkeypatch.setattr(tokens, "_verify", lambda *a: calls.append(a))
    assert decode_token(SECRET, token, "access") is first
    assert calls == []


def test_a_verified_token_expires_on_time(monkeypatch: pytest.MonkeyPatch) -> None:
    token = _token(ttl=60)
    claims = decode_token(SECRET, token, "access")
    monkeypatch.setattr(tokens.time, "time", lambda: claims.expires_at.timestamp())
    with pytest.raises(TokenExpired):
        decode_token(SECRET, token, "access")
    # and it is gone from the verified set: with the clock back, it is verified afresh
    monkeypatch.setattr(tokens.time, "time", time.time)
    assert (SECRET, token, "access") not in tokens._VERIFIED


def test_a_verified_token_serves_neither_another_secret_nor_another_type() -> None:
    token = _token()
    decode_token(SECRET, token, "access")
    with pytest.raises(InvalidToken):
        decode_token("another-secret-of-at-least-32-characters", token, "access")
    with pytest.raises(InvalidToken):
        decode_token(SECRET, token, "refresh")


def test_a_token_changed_after_one_was_verified_is_refused() -> None:
    token = _token()
    decode_token(SECRET, token, "access")
    header, payload, signature = token.split(".")
    forged = jwt.encode(
        {**jwt.decode(token, options={"verify_signature": False}), "uid": 8}, "guess"
    )
    with pytest.raises(InvalidToken):
        decode_token(SECRET, ".".join([*forged.split(".")[:2], signature]), "access")
    with pytest.raises(InvalidToken):
        decode_token(SECRET, f"{header}.{payload}.{signature[:-2]}AA", "access")


def test_the_verified_set_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_VERIFIED", {})
    monkeypatch.setattr(tokens, "VERIFIED_MAX", 5)
    made = [_token(ttl=60 + i) for i in range(12)]
    for token in made:
        decode_token(SECRET, token, "access")
    assert len(tokens._VERIFIED) == 5
    assert {key[1] for key in tokens._VERIFIED} == set(made[-5:])  # the newest stay
