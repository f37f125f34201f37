"""The caller's account seen through its workspaces: `/auth/me` (seed 001's shape, under
the auth tag) and a workspace's API keys under `/workspaces/{id}/api-keys`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from node.auth.deps import PrincipalDep
from node.deps import SessionDep
from node.models.auth import User
from node.workspaces import api_keys
from node.workspaces.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, MeResponse
from node.workspaces.service import list_workspaces

me_router = APIRouter(prefix="/auth", tags=["auth"])
api_keys_router = APIRouter(prefix="/workspaces/{workspace_id}/api-keys", tags=["api-keys"])

WorkspaceId = Annotated[int, Path(ge=1, le=2**31 - 1)]
KeyId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@me_router.get("/me", response_model=MeResponse)
def me(principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    user = session.get(User, principal.user_id)
    assert user is not None
    return {
        "id": user.id,
        "username": user.username,
        "address": user.address,
        "workspaces": [
            {"id": ws.id, "name": ws.name, "role": role}
            for ws, role in list_workspaces(session, principal)
        ],
        "api_key": (
            {"id": principal.api_key_id, "workspace_id": principal.workspace_id}
            if principal.api_key_id is not None
            else None
        ),
    }


@api_keys_router.post("", status_code=201, response_model=ApiKeyCreated)
def create_api_key(
    workspace_id: WorkspaceId, body: ApiKeyCreate, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    """Create a key (owners only). The `key` is in this response and nowhere else."""
    row, key = api_keys.create_api_key(session, principal, workspace_id, body.name, body.role)
    return {
        "id": row.id,
        "name": row.name,
        "key": key,
        "prefix": row.prefix,
        "role": row.role,
        "workspace_id": row.workspace_id,
        "created_at": row.created_at,
    }


@api_keys_router.get("", response_model=list[ApiKeyRead])
def list_api_keys(
    workspace_id: WorkspaceId, principal: PrincipalDep, session: SessionDep
) -> list[Any]:
    return list(api_keys.list_api_keys(session, principal, workspace_id))


@api_keys_router.delete("/{key_id}", status_code=204)
def revoke_api_key(
    workspace_id: WorkspaceId, key_id: KeyId, principal: PrincipalDep, session: SessionDep
) -> Response:
    api_keys.revoke_api_key(session, principal, workspace_id, key_id)
    return Response(status_code=204)
