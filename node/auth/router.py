"""Auth routes: `/auth/login` exactly as seed 001 shows, `/auth/refresh`, Sign-In with
Ethereum (`/auth/nonce`, `/auth/siwe`). `/auth/me` (which lists workspaces) and the
API-key routes are `node.workspaces.router_account`: workspaces build on auth."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from marketplace.errors import (
    InvalidCredentials,
    InvalidSignature,
    InvalidToken,
    NonceInvalid,
    RateLimited,
    RefreshTokenReused,
    SiweChainMismatch,
    SiweDomainMismatch,
    SiweExpired,
    SiweNotYetValid,
    UpstreamUnavailable,
)
from node.auth import service, siwe
from node.auth.deps import password_gate_of
from node.auth.passwords import HashingGate
from node.auth.schemas import (
    LoginRequest,
    NonceResponse,
    RefreshRequest,
    SiweRequest,
    TokenPair,
)
from node.deps import SessionDep, SettingsDep, chain_id_of
from node.limits.rates import limiter, per_client
from node.openapi import raises

router = APIRouter(prefix="/auth", tags=["auth"])


def _chain_id(request: Request) -> int:
    """The id of the chain this node runs on (SIWE messages must name it)."""
    chain_id = chain_id_of(request)
    if chain_id is None:
        raise UpstreamUnavailable("the chain is not started")
    return chain_id


def _password_gate(request: Request) -> HashingGate:
    return password_gate_of(request)


# Every /auth route is rate limited per client address, and per account where one is
# named: 429 RATE_LIMIT_EXCEEDED with Retry-After (node.limits.rates).
@router.post(
    "/login", response_model=TokenPair, dependencies=[Depends(per_client("login_per_client"))]
)
@raises(InvalidCredentials, RateLimited, UpstreamUnavailable)
async def login(
    body: LoginRequest, request: Request, session: SessionDep, settings: SettingsDep
) -> dict[str, str]:
    """Username and password to a token pair. Failed attempts are also limited per
    username; password hashing waits for a slot (429 when none frees up in time)."""
    with limiter(request).failures("login_failures_per_account", body.username.casefold()):
        async with _password_gate(request).slot():
            return await run_in_threadpool(
                service.login, session, settings, body.username, body.password
            )


@router.post(
    "/refresh",
    response_model=TokenPair,
    dependencies=[Depends(per_client("refresh_per_client"))],
)
@raises(InvalidToken, RefreshTokenReused, RateLimited)
def refresh(
    body: RefreshRequest, request: Request, session: SessionDep, settings: SettingsDep
) -> dict[str, str]:
    """A new token pair; the presented refresh token is revoked. Presenting a revoked one
    again signs the user out everywhere (401 `REFRESH_TOKEN_REUSED`)."""
    owner = service.refresh_token_owner(settings, body.refresh_token)
    limiter(request).hit("refresh_per_account", str(owner))
    return service.refresh(session, settings, body.refresh_token)


@router.get(
    "/nonce", response_model=NonceResponse, dependencies=[Depends(per_client("nonce_per_client"))]
)
@raises(UpstreamUnavailable)
def nonce(request: Request, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """A single-use nonce for a Sign-In with Ethereum message, and the domain and chain id
    that message must name."""
    row = siwe.issue_nonce(session, settings)
    return {
        "nonce": row.nonce,
        "expires_at": row.expires_at,
        "domain": siwe.expected_domain(settings),
        "chain_id": _chain_id(request),
        "uri": settings.public_url,
    }


@router.post(
    "/siwe", response_model=TokenPair, dependencies=[Depends(per_client("siwe_per_client"))]
)
@raises(
    InvalidSignature,
    NonceInvalid,
    SiweDomainMismatch,
    SiweChainMismatch,
    SiweExpired,
    SiweNotYetValid,
    RateLimited,
    UpstreamUnavailable,
)
def sign_in_with_ethereum(
    body: SiweRequest, request: Request, session: SessionDep, settings: SettingsDep
) -> dict[str, str]:
    """Verify a signed EIP-4361 message; the token subject is the checksummed address.

    A malformed message is 422 `VALIDATION_ERROR`; a well-formed one that fails a check is
    401 with `INVALID_SIGNATURE`, `NONCE_INVALID`, `SIWE_DOMAIN_MISMATCH`,
    `SIWE_CHAIN_MISMATCH`, `SIWE_EXPIRED` or `SIWE_NOT_YET_VALID`. Failures are also
    limited per address the message names."""
    claimed = siwe.claimed_address(body.message) or "malformed"
    with limiter(request).failures("siwe_failures_per_address", claimed):
        user = siwe.sign_in(
            session, settings, body.message, body.signature, chain_id=_chain_id(request)
        )
    return service.issue_token_pair(session, settings, user)
