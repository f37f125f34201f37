"""Authentication rules: password login, token refresh with rotation, bearer verification.

Sign-In with Ethereum lives in `node/auth/siwe.py`, API keys in `node/auth/api_keys.py`;
`authenticate_bearer` is the one entry point that tells the credentials apart.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from marketplace.errors import InvalidCredentials, InvalidToken, RefreshTokenReused
from node.auth import repository
from node.auth.api_keys import API_KEY_PREFIX, authenticate_api_key
from node.auth.cache import CachedUser, UserCache
from node.auth.passwords import hash_password, verify_password
from node.auth.principal import Principal
from node.auth.tokens import TokenClaims, decode_token, encode_token
from node.config import NodeSettings
from node.db import utcnow
from node.models.auth import RefreshToken, User


def create_user(session: Session, username: str, password: str) -> User:
    user = User(username=username, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def issue_token_pair(session: Session, settings: NodeSettings, user: User) -> dict[str, str]:
    """Access + refresh token for `user`; the subject is the wallet address if it has one."""
    subject = user.subject
    secret = settings.secret_key.get_secret_value()
    access, _ = encode_token(
        secret,
        user_id=user.id,
        subject=subject,
        token_type="access",
        ttl_seconds=settings.access_token_seconds,
    )
    refresh, claims = encode_token(
        secret,
        user_id=user.id,
        subject=subject,
        token_type="refresh",
        ttl_seconds=settings.refresh_token_seconds,
    )
    session.add(RefreshToken(jti=claims.jti, user_id=user.id, expires_at=claims.expires_at))
    session.flush()
    return {"access_token": access, "refresh_token": refresh, "token_type": "bearer"}


def login(session: Session, settings: NodeSettings, username: str, password: str) -> dict[str, str]:
    user = repository.user_by_username(session, username)
    if not verify_password(user.password_hash if user else None, password) or user is None:
        raise InvalidCredentials("Incorrect username or password")
    if not user.is_active:
        raise InvalidCredentials("Account disabled")
    return issue_token_pair(session, settings, user)


def refresh_token_owner(settings: NodeSettings, token: str) -> int:
    """The user id a validly signed refresh token names (401 otherwise)."""
    return decode_token(settings.secret_key.get_secret_value(), token, "refresh").user_id


def refresh(session: Session, settings: NodeSettings, token: str) -> dict[str, str]:
    """Trade a refresh token for a new pair; the presented token is revoked (rotation).

    A refresh token that was already revoked means that two parties hold it: the
    legitimate client and a thief. All of the user's refresh tokens are then revoked,
    which ends the thief's session too (the user signs in again).
    """
    claims = decode_token(settings.secret_key.get_secret_value(), token, "refresh")
    now = utcnow()
    if repository.revoke_refresh_token(session, claims.jti, now):
        user = session.get(User, claims.user_id)
        if user is None or not user.is_active:
            raise InvalidToken("Invalid token")
        return issue_token_pair(session, settings, user)
    row = session.get(RefreshToken, claims.jti)
    if row is None or row.user_id != claims.user_id:
        raise InvalidToken("Invalid token")
    if row.revoked_at is not None:
        repository.revoke_user_refresh_tokens(session, row.user_id, now)
        # The request's transaction rolls back on the error below; the revocation is the
        # point of this branch, so it is committed first.
        session.commit()
        raise RefreshTokenReused("Refresh token already used; all sessions were signed out")
    raise InvalidToken("Refresh token expired")


def authenticate_bearer(
    session: Session, settings: NodeSettings, token: str, users: UserCache | None = None
) -> Principal:
    """The caller behind a bearer credential: an access token or a `dcm_...` API key.
    `users` (`node.auth.cache`) may answer an access token's user lookup."""
    if token.startswith(API_KEY_PREFIX):
        return authenticate_api_key(session, token)
    claims = access_claims(settings, token)
    return principal_of(claims, _active_user(session, claims, users))


def access_claims(settings: NodeSettings, token: str) -> TokenClaims:
    """An access token's verified claims (signature, expiry, type); no database."""
    return decode_token(settings.secret_key.get_secret_value(), token, "access")


def cached_principal(claims: TokenClaims, users: UserCache) -> Principal | None:
    """The principal of verified access-token `claims` if `users` still holds its user,
    else None (the caller looks the user up: `authenticate_bearer`)."""
    user = users.get(claims.user_id)
    return principal_of(claims, user) if user is not None else None


def principal_of(claims: TokenClaims, user: CachedUser) -> Principal:
    return Principal(user_id=user.user_id, subject=claims.subject, address=user.address)


def _active_user(session: Session, claims: TokenClaims, users: UserCache | None) -> CachedUser:
    cached = users.get(claims.user_id) if users is not None else None
    if cached is not None:
        return cached
    user = session.get(User, claims.user_id)
    if user is None or not user.is_active:
        raise InvalidToken("Invalid token")
    found = CachedUser(user_id=user.id, address=user.address)
    if users is not None:
        users.put(found)
    return found
