"""Signed bearer tokens (HS256 JWT): short-lived access tokens, rotating refresh tokens."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Literal

import jwt

from marketplace.errors import InvalidToken, TokenExpired
from node.db import utcnow

ALGORITHM = "HS256"
TokenType = Literal["access", "refresh"]


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


def decode_token(secret: str, token: str, expected: TokenType) -> TokenClaims:
    """Verify signature, expiry and type; raise `TokenExpired` or `InvalidToken` otherwise.

    The `typ` claim keeps an access token from serving as a refresh token and back."""
    try:
        payload = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp"]})
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired("Token expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("Invalid token") from exc
    if (
        payload.get("typ") != expected
        or not isinstance(payload.get("uid"), int)
        or not isinstance(payload.get("jti"), str)
    ):
        raise InvalidToken("Invalid token")
    return TokenClaims(
        user_id=payload["uid"],
        subject=str(payload.get("sub", "")),
        token_type=expected,
        jti=str(payload.get("jti", "")),
        expires_at=dt.datetime.fromtimestamp(payload["exp"], dt.UTC),
    )
