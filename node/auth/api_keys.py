"""Workspace-scoped API keys: the key format, its hash, and authenticating a `dcm_...`
bearer (creating, listing and revoking keys is `node.workspaces.api_keys`).

A key is `dcm_` followed by 256 random bits (URL-safe base64). Such a secret cannot be
guessed, so a fast SHA-256 is the right hash (a slow password hash would only slow every
request); the hash is the lookup key. `prefix`, the key's first 12 characters, is kept in
clear so that people can tell their keys apart in a listing.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy.orm import Session

from marketplace.errors import InvalidApiKey
from node.auth import repository
from node.auth.principal import Principal
from node.db import utcnow
from node.models.auth import ApiKey, User

API_KEY_PREFIX = "dcm_"
PREFIX_CHARS = 12
MAX_KEY_CHARS = 128
# `last_used_at` is written at most this often per key, so that a busy key does not turn
# every read request into a write.
LAST_USED_RESOLUTION = dt.timedelta(seconds=60)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def live_api_key(session: Session, key: str) -> ApiKey:
    """The row of a key that is known, not revoked, and whose creator is active; 401
    INVALID_API_KEY otherwise."""
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
    return row


def authenticate_api_key(session: Session, key: str) -> Principal:
    """The principal of a `dcm_...` bearer: the key's creator, scoped to its workspace."""
    row = live_api_key(session, key)
    user = session.get(User, row.user_id)
    assert user is not None
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
