"""FastAPI dependencies shared by every router: settings and the request's DB session (one
request, one transaction), read from the node's runtime (`node.runtime`). The
authenticated principal is `node.auth.deps.PrincipalDep`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from node.config import NodeSettings
from node.db import session_scope
from node.notifier import Notifier


def settings_of(request: Request) -> NodeSettings:
    return request.app.state.runtime.settings


def sessions_of(request: Request) -> sessionmaker[Session]:
    """The session factory, for a route that opens its own transaction (a long-poll)."""
    return request.app.state.runtime.sessionmaker


def notifier_of(request: Request) -> Notifier:
    """The node's one notifier (`node.notifier`)."""
    return request.app.state.runtime.notifier


def chain_id_of(request: Request) -> int | None:
    """The running chain's id; None before the chain has started."""
    return request.app.state.runtime.chain_id


def get_settings(request: Request) -> NodeSettings:
    return settings_of(request)


def get_db_session(request: Request) -> Iterator[Session]:
    """The request's session: commits if the handler returns, rolls back if it raises."""
    with session_scope(sessions_of(request)) as session:
        yield session


SettingsDep = Annotated[NodeSettings, Depends(get_settings)]
# scope="function": the commit runs when the handler returns, before the response is sent.
# With the default ("request") FastAPI closes yield dependencies after sending, so a fast
# client could read before the write it was just told about is committed.
SessionDep = Annotated[Session, Depends(get_db_session, scope="function")]


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
