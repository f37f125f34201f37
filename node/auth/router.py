"""Auth routes: `/auth/login` exactly as seed 001 shows, `/auth/refresh`, Sign-In with
Ethereum (`/auth/nonce`, `/auth/siwe`), `/auth/me`; and the API-key routes under
`/workspaces/{id}/api-keys`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from node.auth import api_keys, service, siwe
from node.auth.models import User
from node.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    LoginRequest,
    MeResponse,
    NonceResponse,
    RefreshRequest,
    SiweRequest,
    TokenPair,
)
from node.deps import PrincipalDep, SessionDep, SettingsDep
from node.workspaces.service import list_workspaces

router = APIRouter(prefix="/auth", tags=["auth"])
api_keys_router = APIRouter(prefix="/workspaces/{workspace_id}/api-keys", tags=["api-keys"])

WorkspaceId = Annotated[int, Path(ge=1, le=2**31 - 1)]
KeyId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("/login", response_model=TokenPair)
def login(body: LoginRequest, session: SessionDep, settings: SettingsDep) -> dict[str, str]:
    return service.login(session, settings, body.username, body.password)


@router.post("/refresh", response_model=TokenPair)
def refresh(body: RefreshRequest, session: SessionDep, settings: SettingsDep) -> dict[str, str]:
    """A new token pair; the presented refresh token is revoked. Presenting a revoked one
    again signs the user out everywhere (401 `REFRESH_TOKEN_REUSED`)."""
    return service.refresh(session, settings, body.refresh_token)


@router.get("/nonce", response_model=NonceResponse)
def nonce(session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """A single-use nonce for a Sign-In with Ethereum message, and the domain and chain id
    that message must name."""
    row = siwe.issue_nonce(session, settings)
    return {
        "nonce": row.nonce,
        "expires_at": row.expires_at,
        "domain": siwe.expected_domain(settings),
        "chain_id": settings.chain_id,
        "uri": settings.public_url,
    }


@router.post("/siwe", response_model=TokenPair)
def sign_in_with_ethereum(
    body: SiweRequest, session: SessionDep, settings: SettingsDep
) -> dict[str, str]:
    """Verify a signed EIP-4361 message; the token subject is the checksummed address.

    A malformed message is 422 `VALIDATION_ERROR`; a well-formed one that fails a check is
    401 with `INVALID_SIGNATURE`, `NONCE_INVALID`, `SIWE_DOMAIN_MISMATCH`,
    `SIWE_CHAIN_MISMATCH`, `SIWE_EXPIRED` or `SIWE_NOT_YET_VALID`."""
    user = siwe.sign_in(session, settings, body.message, body.signature)
    return service.issue_token_pair(session, settings, user)


@router.get("/me", response_model=MeResponse)
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
