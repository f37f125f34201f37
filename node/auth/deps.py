"""The authenticated caller as a FastAPI dependency: `PrincipalDep` (401 without a valid
Bearer credential) and `OptionalPrincipalDep` (None without one)."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from marketplace.errors import (
    Forbidden,
    InvalidApiKey,
    InvalidToken,
    RateLimited,
    TokenExpired,
    Unauthorized,
)
from node.auth.api_keys import API_KEY_PREFIX
from node.auth.cache import UserCache
from node.auth.passwords import HashingGate
from node.auth.principal import Principal
from node.auth.service import access_claims, authenticate_bearer, cached_principal
from node.config import NodeSettings
from node.db import session_scope
from node.deps import BearerDoc, SettingsDep, bearer_token, db_thread, sessions_of, settings_of
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
        principal = authenticate_bearer(session, settings, token, users_of(request))
    request.state.principal = principal
    return principal


async def authenticate_request_async(request: Request, settings: NodeSettings) -> Principal:
    """`authenticate_request` from the event loop: an access token whose user is in the
    cache (`node.auth.cache`) is verified here, without a worker thread or a statement;
    any other credential is looked up in one worker thread hop, in a transaction of its
    own (an API key's last use is written and committed there). So the route's session,
    if it has one, is not the authentication's: a route that writes in a transaction of
    its own (`node.jobs.creates`) takes no session, and FastAPI makes none for it."""
    known: Principal | None = getattr(request.state, "principal", None)
    if known is not None:  # verified in front of routing (`known_principal`, node.readcache)
        return known
    token = bearer_token(request)
    if token is None:
        raise Unauthorized("Missing bearer token")
    users = users_of(request)
    with limiter(request).failures("auth_failures_per_client", client_address(request)):
        principal = None
        if not token.startswith(API_KEY_PREFIX):
            # signature, expiry and type: checked on every request, cache or not
            principal = cached_principal(access_claims(settings, token), users)
        if principal is None:
            principal = await db_thread(
                partial(_authenticate, sessions_of(request), settings, token, users)
            )
    request.state.principal = principal
    return principal


def _authenticate(
    sessions: sessionmaker[Session], settings: NodeSettings, token: str, users: UserCache
) -> Principal:
    with session_scope(sessions) as session:
        return authenticate_bearer(session, settings, token, users)


# Any authenticated route may refuse a valid credential that is not allowed to act there.
# Both are async: a cached access token costs no worker thread (FastAPI runs a sync
# dependency in a thread of its own).
@raises(Unauthorized, InvalidToken, TokenExpired, InvalidApiKey, Forbidden, RateLimited)
async def get_principal(
    request: Request, settings: SettingsDep, _doc: BearerDoc = None
) -> Principal:
    return await authenticate_request_async(request, settings)


@raises(Unauthorized, InvalidToken, TokenExpired, InvalidApiKey, RateLimited)
async def get_optional_principal(
    request: Request, settings: SettingsDep, _doc: BearerDoc = None
) -> Principal | None:
    if bearer_token(request) is None:
        return None
    return await authenticate_request_async(request, settings)


def known_principal(request: Request) -> Principal | None:
    """The caller an access token names, when that is known without the database: a
    valid token whose user is in the cache. None for anything else (no credential, an API
    key, a refused token, a user not looked up lately), which `get_principal` decides in
    full, counting refusals. For the cached reads (`node.readcache`)."""
    token = bearer_token(request)
    if token is None or token.startswith(API_KEY_PREFIX):
        return None
    try:
        claims = access_claims(settings_of(request), token)
    except (InvalidToken, TokenExpired):
        return None
    return cached_principal(claims, users_of(request))


def users_of(request: Request) -> UserCache:
    """The node's access-token user cache (`node.auth.cache`)."""
    return request.app.state.runtime.users


PrincipalDep = Annotated[Principal, Depends(get_principal, scope="function")]
OptionalPrincipalDep = Annotated[
    Principal | None, Depends(get_optional_principal, scope="function")
]


def password_gate_of(request: Request) -> HashingGate:
    """The gate bounding concurrent password hashing (`node.auth.passwords`)."""
    return request.app.state.runtime.password_gate
