"""Workspace-scoped API keys: create (the secret is shown once), list, revoke, and
authenticate a `dcm_...` bearer.

A key is `dcm_` followed by 256 random bits (URL-safe base64). Such a secret cannot be
guessed, so a fast SHA-256 is the right hash (a slow password hash would only slow every
request); the hash is the lookup key. `prefix`, the key's first 12 characters, is kept in
clear so that people can tell their keys apart in a listing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy.orm import Session

from marketplace.errors import ApiKeyNotFound, Forbidden, InvalidApiKey
from node.auth import repository
from node.auth.models import ApiKey, User
from node.db import utcnow
from node.deps import Principal
from node.workspaces.models import Role
from node.workspaces.service import require_role

API_KEY_PREFIX = "dcm_"
PREFIX_CHARS = 12
MAX_KEY_CHARS = 128
# `last_used_at` is written at most this often per key, so that a busy key does not turn
# every read request into a write.
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _require_user_credential(principal: Principal) -> None:
    # A key must not mint or revoke keys: a leaked key could otherwise outlive its revocation.
    if principal.api_key_id is not None:
        raise Forbidden("API keys cannot manage API keys; sign in as a user")


def create_api_key(
    session: Session, principal: Principal, workspace_id: int, name: str, role: Role
) -> tuple[ApiKey, str]:
    """Create a key for the workspace (owners only; role at most the creator's).

    Returns the row and the secret, which is not stored and cannot be shown again.
    """
    _require_user_credential(principal)
    creator_role = require_role(session, principal, workspace_id, Role.OWNER)
    if role.rank > creator_role.rank:
        raise Forbidden(f"Cannot create a {role.value} key as {creator_role.value}")
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        workspace_id=workspace_id,
        user_id=principal.user_id,
        name=name,
        prefix=key[:PREFIX_CHARS],
        key_hash=hash_key(key),
        role=role.value,
    )
    session.add(row)
    session.flush()
    return row, key


def list_api_keys(session: Session, principal: Principal, workspace_id: int) -> list[ApiKey]:
    _require_user_credential(principal)
    require_role(session, principal, workspace_id, Role.OWNER)
    return repository.api_keys_of_workspace(session, workspace_id)


def revoke_api_key(session: Session, principal: Principal, workspace_id: int, key_id: int) -> None:
    """Revoke a key of the workspace; revoking a revoked key is a no-op."""
    _require_user_credential(principal)
    require_role(session, principal, workspace_id, Role.OWNER)
    row = session.get(ApiKey, key_id) if 0 < key_id < 2**31 else None
    if row is None or row.workspace_id != workspace_id:
        raise ApiKeyNotFound()
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()


def authenticate_api_key(session: Session, key: str) -> Principal:
    """The principal of a `dcm_...` bearer: the key's creator, scoped to its workspace."""
    if len(key) > MAX_KEY_CHARS:
        raise InvalidApiKey("Invalid API key")
    row = repository.api_key_by_hash(session, hash_key(key))
    if row is None:
        raise InvalidApiKey("Invalid API key")
    if row.revoked_at is not None:
        raise InvalidApiKey("API key revoked")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise InvalidApiKey("Invalid API key")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
        session.flush()
    return Principal(
        user_id=user.id,
        subject=user.subject,
        address=user.address,
        workspace_id=row.workspace_id,
        api_key_id=row.id,
    )
