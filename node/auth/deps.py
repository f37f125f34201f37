"""The authenticated caller as a FastAPI dependency: `PrincipalDep` (401 without a valid
Bearer credential) and `OptionalPrincipalDep` (None without one)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from marketplace.errors import (
    Forbidden,
    InvalidApiKey,
    InvalidToken,
    RateLimited,
    TokenExpired,
    Unauthorized,
)
from node.auth.passwords import HashingGate
from node.auth.principal import Principal
from node.auth.service import authenticate_bearer
from node.config import NodeSettings
from node.deps import BearerDoc, SessionDep, SettingsDep, bearer_token
from node.limits.rates import client_address, limiter
from node.openapi import raises


def authenticate_request(request: Request, session: Session, settings: NodeSettings) -> Principal:
    """Authenticate the request's Bearer credential (access token or API key); 401
    otherwise. Rejected credentials are counted per client address: past the limit, 429
    before any lookup (guessing API keys or forging tokens is not free). The one way in
    for every authenticated route, whichever dependency it reaches it through."""
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("Missing bearer token")
    with limiter(request).failures("auth_failures_per_client", client_address(request)):
        principal = authenticate_bearer(session, settings, token)
    request.state.principal = principal
    return principal


# Any authenticated route may refuse a valid credential that is not allowed to act there.
@raises(Unauthorized, InvalidToken, TokenExpired, InvalidApiKey, Forbidden, RateLimited)
def get_principal(
    request: Request, session: SessionDep, settings: SettingsDep, _doc: BearerDoc = None
) -> Principal:
    return authenticate_request(request, session, settings)


@raises(Unauthorized, InvalidToken, TokenExpired, InvalidApiKey, RateLimited)
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


def password_gate_of(request: Request) -> HashingGate:
    """The gate bounding concurrent password hashing (`node.auth.passwords`)."""
    return request.app.state.runtime.password_gate
