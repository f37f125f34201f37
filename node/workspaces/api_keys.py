"""Managing a workspace's API keys (owners only): create (the secret is shown once), list,
revoke. The key format and authenticating a key are `node.auth.api_keys`."""

from __future__ import annotations

import secrets

from sqlalchemy.orm import Session

from marketplace.errors import ApiKeyNotFound
from node.auth import repository
from node.auth.api_keys import API_KEY_PREFIX, PREFIX_CHARS, hash_key
from node.auth.principal import Principal
from node.authz.policy import Action, authorize, require_user_credential
from node.db import utcnow
from node.models.auth import ApiKey
from node.models.workspaces import Role


def _manage(session: Session, principal: Principal, workspace_id: int) -> None:
    # A key must not mint or revoke keys: a leaked key could otherwise outlive its revocation.
    require_user_credential(principal, "manage API keys")
    authorize(session, principal, workspace_id, Action.MANAGE_KEYS)


def create_api_key(
    session: Session, principal: Principal, workspace_id: int, name: str, role: Role
) -> tuple[ApiKey, str]:
    """Create a key for the workspace (owners only, so any role: owner, member, viewer, or
    `provider` to admit a provider daemon to the workspace's private pool).

    Returns the row and the secret, which is not stored and cannot be shown again.
    """
    _manage(session, principal, workspace_id)
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
    _manage(session, principal, workspace_id)
    return repository.api_keys_of_workspace(session, workspace_id)


def revoke_api_key(session: Session, principal: Principal, workspace_id: int, key_id: int) -> None:
    """Revoke a key of the workspace; revoking a revoked key is a no-op. A provider
    admitted with it is no longer offered, and may no longer write to, the workspace's
    private jobs."""
    _manage(session, principal, workspace_id)
    row = session.get(ApiKey, key_id) if 0 < key_id < 2**31 else None
    if row is None or row.workspace_id != workspace_id:
        raise ApiKeyNotFound()
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
