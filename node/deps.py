"""FastAPI dependencies shared by every router: settings, the request's DB session
(one request, one transaction) and the authenticated principal."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from marketplace.errors import Unauthorized
from node.config import NodeSettings
from node.db import session_scope


def get_settings(request: Request) -> NodeSettings:
    return request.app.state.settings


def get_db_session(request: Request) -> Iterator[Session]:
    """The request's session: commits if the handler returns, rolls back if it raises."""
    with session_scope(request.app.state.sessionmaker) as session:
        yield session


SettingsDep = Annotated[NodeSettings, Depends(get_settings)]
# scope="function": the commit runs when the handler returns, before the response is sent.
# With the default ("request") FastAPI closes yield dependencies after sending, so a fast
# client could read before the write it was just told about is committed.
SessionDep = Annotated[Session, Depends(get_db_session, scope="function")]


@dataclass(frozen=True)
class Principal:
    """Who is calling. `workspace_id` is set when the credential is an API key scoped to
    one workspace: such a caller can reach that workspace and nothing else."""

    user_id: int
    subject: str
    address: str | None = None
    workspace_id: int | None = None
    api_key_id: int | None = None


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# Declares the Bearer scheme in the OpenAPI document (the "Authorize" button of /docs);
# the header itself is read by `bearer_token`, which answers in the domain's 401.
_bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An access token (/auth/login, /auth/siwe, /auth/refresh) or a dcm_... API key.",
)
BearerDoc = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)]


def get_principal(
    request: Request, session: SessionDep, settings: SettingsDep, _doc: BearerDoc = None
) -> Principal:
    """Authenticate the Bearer credential (access token or API key); 401 otherwise."""
    from node.auth.service import authenticate_bearer

    token = bearer_token(request)
    if token is None:
        raise Unauthorized("Missing bearer token")
    principal = authenticate_bearer(session, settings, token)
    request.state.principal = principal
    return principal


def get_optional_principal(
    request: Request, session: SessionDep, settings: SettingsDep, _doc: BearerDoc = None
) -> Principal | None:
    if bearer_token(request) is None:
        return None
    return get_principal(request, session, settings)


PrincipalDep = Annotated[Principal, Depends(get_principal, scope="function")]
OptionalPrincipalDep = Annotated[
    Principal | None, Depends(get_optional_principal, scope="function")
]
