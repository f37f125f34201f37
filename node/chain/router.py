"""`/chain` routes: Ethereum JSON-RPC of the embedded EVM, chain info, dev faucet.

The faucet router is mounted only with the embedded chain in development
(`install_chain`), so in production the route does not exist at all (404).
"""

from __future__ import annotations

import json
from decimal import Decimal

from eth_utils import to_checksum_address
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from marketplace.errors import NotFound, UpstreamUnavailable, ValidationFailed
from node.chain.host import ChainHost, EmbeddedChainHost
from node.chain.rpc import PARSE_ERROR, _error
from node.chain.schemas import WEI_PER_ETH, ChainInfo, FaucetRequest, FaucetResult

router = APIRouter(prefix="/chain", tags=["chain"])
faucet_router = APIRouter(prefix="/chain", tags=["chain"])

MAX_RPC_BODY_BYTES = 1024 * 1024


def _host(request: Request) -> ChainHost:
    host = getattr(request.app.state, "chain", None)
    if host is None:
        raise UpstreamUnavailable("the chain is not started")
    return host


@router.post("/rpc", summary="Ethereum JSON-RPC 2.0 (single or batch) of the embedded EVM")
async def chain_rpc(request: Request) -> Response:
    host = _host(request)
    if not isinstance(host, EmbeddedChainHost):
        raise NotFound(f"this node uses an external chain: {host.rpc_url}")
    raw = await request.body()
    if len(raw) > MAX_RPC_BODY_BYTES:
        return JSONResponse(_error(None, -32600, "request too large"), 413)
    try:
        body = json.loads(raw)
    except ValueError:
        return JSONResponse(_error(None, PARSE_ERROR, "parse error"))
    # eth-tester is synchronous and serialized by its own lock: keep it off the event loop
    reply = await run_in_threadpool(host.dispatcher.handle, body)
    if reply is None:
        return Response(status_code=204)
    return JSONResponse(reply)


@router.get("/info", response_model=ChainInfo)
def chain_info(request: Request) -> ChainInfo:
    host = _host(request)
    return ChainInfo(
        chain_id=host.chain_id,
        escrow_address=host.escrow_address,
        deployment_block=host.deployment_block,
        confirmations=host.confirmations,
        rpc_url=host.rpc_url,
    )


@faucet_router.post("/faucet", response_model=FaucetResult)
def chain_faucet(body: FaucetRequest, request: Request) -> FaucetResult:
    """Development only: mint test ETH to an address (from the operator's genesis funds)."""
    host = _host(request)
    assert isinstance(host, EmbeddedChainHost)
    cap = Decimal(request.app.state.settings.chain_faucet_max_eth)
    if Decimal(body.amount) > cap:
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
