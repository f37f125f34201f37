"""`/chain` routes: Ethereum JSON-RPC of the embedded EVM, chain info, dev faucet.

The faucet router is mounted only with the embedded chain in development
(`node.app.create_app`), so in production the route does not exist at all (404).
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress

from eth_utils import to_checksum_address
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from marketplace.errors import (
    ChainError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    UpstreamUnavailable,
    ValidationFailed,
)
from marketplace.jsondepth import loads_bounded
from marketplace.money import eth_to_wei
from node.chain.deps import running_chain
from node.chain.host import ChainHost, EmbeddedChainHost
from node.chain.rpc import PARSE_ERROR, _error
from node.chain.schemas import WEI_PER_ETH, ChainInfo, FaucetRequest, FaucetResult
from node.deps import bearer_token, settings_of
from node.limits.rates import limiter, per_client
from node.openapi import raises

router = APIRouter(prefix="/chain", tags=["chain"])
faucet_router = APIRouter(prefix="/chain", tags=["chain"])

# A JSON-RPC 2.0 request or batch; errors of the calls are JSON-RPC error objects (200).
RPC_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"anyOf": [{"type": "object"}, {"type": "array", "items": {}}]}
            }
        },
    }
}


def _host(request: Request) -> ChainHost:
    return running_chain(request)


def _dev_methods_allowed(request: Request) -> bool:
    """Time control (`evm_mine`, `evm_increaseTime`) moves every deadline of the node's
    chain: only a client on this machine, or one holding the operator token, may use it.
    A browser request (it carries `Origin`) does not count as a loopback client: with CORS
    open in development, any web page the developer visits could otherwise rewind the
    node's chain (`evm_revert`) through the developer's own browser."""
    browser = request.headers.get("origin") is not None
    if not browser and _is_loopback(request.client.host if request.client else ""):
        return True
    expected = settings_of(request).operator_token
    presented = bearer_token(request)
    return bool(
        expected is not None
        and presented is not None
        and hmac.compare_digest(presented.encode(), expected.get_secret_value().encode())
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _cors_headers(request: Request) -> dict[str, str]:
    """CORS headers for a browser page on another origin (a dapp, a wallet extension),
    when the node allows that origin (`NodeSettings.rpc_cors_origins`); none otherwise,
    and the browser refuses the page the answer. Never with credentials: JSON-RPC needs
    none, and the operator token must not ride on a page's cookies."""
    origin = request.headers.get("origin")
    allowed = settings_of(request).rpc_cors_origins
    if not origin or not allowed:
        return {}
    if "*" in allowed:
        return {"Access-Control-Allow-Origin": "*"}
    if origin in allowed:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {}


@router.options("/rpc", include_in_schema=False)
def chain_rpc_preflight(request: Request) -> Response:
    """CORS preflight of `POST /chain/rpc`."""
    headers = _cors_headers(request)
    if headers:
        headers.update(
            {
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "content-type, authorization",
                "Access-Control-Max-Age": "600",
            }
        )
    return Response(status_code=204, headers=headers)


@router.post(
    "/rpc",
    summary="Ethereum JSON-RPC 2.0 (single or batch) of the embedded EVM",
    openapi_extra=RPC_BODY,
    responses={204: {"description": "The request held only notifications"}},
)
@raises(NotFound, UpstreamUnavailable)
async def chain_rpc(request: Request) -> Response:
    host = _host(request)
    if not isinstance(host, EmbeddedChainHost):
        raise NotFound(f"this node uses an external chain: {host.rpc_url}")
    settings = settings_of(request)
    cors = _cors_headers(request)
    raw = await request.body()  # bounded in size and depth by node.limits.body
    if len(raw) > settings.body.max_rpc_bytes:
        raise PayloadTooLarge(f"JSON-RPC body over {settings.body.max_rpc_bytes} bytes")
    try:
        body = loads_bounded(raw, settings.body.max_json_depth)
    except ValueError:
        return JSONResponse(_error(None, PARSE_ERROR, "parse error"), headers=cors)
    dev_allowed = _dev_methods_allowed(request)
    # eth-tester is synchronous and serialized by its own lock: a quick read is answered
    # here when the chain is free (a thread hop would cost more than the read), anything
    # else in a worker thread, so the event loop never waits on the chain
    answered, reply = host.dispatcher.handle_now(body, dev_allowed=dev_allowed)
    if not answered:
        reply = await run_in_threadpool(host.dispatcher.handle, body, dev_allowed=dev_allowed)
    if reply is None:
        return Response(status_code=204, headers=cors)
    return JSONResponse(reply, headers=cors)


@router.get("/info", response_model=ChainInfo)
@raises(UpstreamUnavailable)
def chain_info(request: Request) -> ChainInfo:
    """The chain providers and wallets use. The embedded chain's RPC URL is where this
    node listens (`dcm serve --host/--port`), or the request's own host when it listens
    on every interface, unless DCM_PUBLIC_URL says otherwise."""
    host = _host(request)
    rpc_url = host.rpc_url
    if host.embedded and settings_of(request).public_url_from_request:
        rpc_url = str(request.base_url).rstrip("/") + "/chain/rpc"
    assigner = arbiter = None
    if host.escrow_address:  # the deployed escrow's own word
        escrow = host.escrow()
        with contextlib.suppress(ChainError):  # code that is no JobEscrow has neither
            assigner, arbiter = escrow.assigner(), escrow.arbiter()
    return ChainInfo(
        chain_id=host.chain_id,
        escrow_address=host.escrow_address,
        deployment_block=host.deployment_block,
        confirmations=host.confirmations,
        rpc_url=rpc_url,
        assigner=assigner,
        arbiter=arbiter,
    )


@faucet_router.post(
    "/faucet", response_model=FaucetResult, dependencies=[Depends(per_client("faucet_per_client"))]
)
@raises(UpstreamUnavailable, RateLimited)
def chain_faucet(body: FaucetRequest, request: Request) -> FaucetResult:
    """Development only: mint test ETH to an address (from the operator's genesis funds).
    Rate limited per client address and per receiving address (429 with Retry-After)."""
    host = _host(request)
    assert isinstance(host, EmbeddedChainHost)
    limiter(request).hit("faucet_per_address", body.address)
    cap = settings_of(request).chain_faucet_max_eth
    if body.amount_wei > eth_to_wei(cap):
        raise ValidationFailed(
            f"amount is above the faucet cap of {cap} ETH",
            details=[{"loc": ["body", "amount"], "msg": f"at most {cap}", "type": "value_error"}],
        )
    receipt = host.faucet(body.address, body.amount_wei)
    return FaucetResult(
        address=body.address,
        amount_wei=str(body.amount_wei),
        tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        block_number=int(receipt["blockNumber"]),
        balance_wei=str(host.w3.eth.get_balance(to_checksum_address(body.address))),
    )


__all__ = ["WEI_PER_ETH", "faucet_router", "router"]
