"""Signed bearer tokens (HS256 JWT): short-lived access tokens, rotating refresh tokens."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Literal, TypeGuard

import jwt

from marketplace.errors import InvalidToken, TokenExpired
from marketplace.jsondepth import exceeds_depth
from node.db import utcnow

ALGORITHM = "HS256"
TokenType = Literal["access", "refresh"]
# Tokens this node issues are ~300 characters; anything far longer is not one of ours.
MAX_TOKEN_CHARS = 4096
MAX_CLAIMS_DEPTH = 4
MAX_ID = 2**31 - 1  # ids are 32-bit integer columns
MAX_JTI_CHARS = 64  # refresh_tokens.jti is String(64)
MAX_EXP = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime can hold


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    subject: str
    token_type: TokenType
    jti: str
    expires_at: dt.datetime


def encode_token(
    secret: str, *, user_id: int, subject: str, token_type: TokenType, ttl_seconds: int
) -> tuple[str, TokenClaims]:
    now = utcnow()
    claims = TokenClaims(
        user_id=user_id,
        subject=subject,
        token_type=token_type,
        jti=secrets.token_hex(16),
        expires_at=now + dt.timedelta(seconds=ttl_seconds),
    )
    payload = {
        "sub": subject,
        "uid": user_id,
        "typ": token_type,
        "jti": claims.jti,
        "iat": int(now.timestamp()),
        "exp": int(claims.expires_at.timestamp()),
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM), claims


def _within_parse_bounds(token: str) -> bool:
    """Whether the token is small and shallow enough to hand to PyJWT, which parses the
    (attacker-chosen) header JSON before it checks the signature."""
    if len(token) > MAX_TOKEN_CHARS:
        return False
    for segment in token.split(".")[:2]:
        try:
            raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        except (ValueError, binascii.Error):
            return False
        if exceeds_depth(raw, MAX_CLAIMS_DEPTH):
            return False
    return True


# Tokens verified already, with their claims: a client sends the same access token with
# every request, and verifying it again (bounds, base64, JSON, HMAC, claims) cost about
# 40 us of the event loop's time per request. A verdict can only change by expiry, which
# is checked on every use. FIFO-bounded; the key holds the secret, so a new secret
# verifies afresh.
_VERIFIED: dict[tuple[str, str, TokenType], TokenClaims] = {}
VERIFIED_MAX = 10_000
_VERIFIED_LOCK = threading.Lock()


def decode_token(secret: str, token: str, expected: TokenType) -> TokenClaims:
    """Verify signature, expiry and type; raise `TokenExpired` or `InvalidToken` otherwise.

    The `typ` claim keeps an access token from serving as a refresh token and back. Every
    claim read is checked for type and range (a `uid` past the id column, an `exp` past
    the calendar), so no signed-but-absurd token reaches the database or the clock."""
    key = (secret, token, expected)
    claims = _VERIFIED.get(key)
    if claims is None:
        claims = _verify(secret, token, expected)
        with _VERIFIED_LOCK:  # request threads and the event loop: one writer at a time
            while len(_VERIFIED) >= VERIFIED_MAX:
                del _VERIFIED[next(iter(_VERIFIED))]
            _VERIFIED[key] = claims
    # PyJWT's rule: expired once `exp` <= now (no leeway)
    if claims.expires_at.timestamp() <= time.time():
        with _VERIFIED_LOCK:
            _VERIFIED.pop(key, None)
        raise TokenExpired("Token expired")
    return claims


def _verify(secret: str, token: str, expected: TokenType) -> TokenClaims:
    if not _within_parse_bounds(token):
        raise InvalidToken("Invalid token")
    try:
        payload = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp"]})
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired("Token expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("Invalid token") from exc
    uid, jti, exp = payload.get("uid"), payload.get("jti"), payload.get("exp")
    if (
        payload.get("typ") != expected
        or not _is_int_in(uid, 1, MAX_ID)
        or not isinstance(jti, str)
        or not 0 < len(jti) <= MAX_JTI_CHARS
        or not _is_int_in(exp, 1, MAX_EXP)
        or not isinstance(payload.get("sub", ""), str)
    ):
        raise InvalidToken("Invalid token")
    return TokenClaims(
        user_id=uid,
        subject=str(payload.get("sub", "")),
        token_type=expected,
        jti=jti,
        expires_at=dt.datetime.fromtimestamp(exp, dt.UTC),
    )


def _is_int_in(value: object, lo: int, hi: int) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi
