"""The money side of `/v1`: funding and requester calls of a job, its settlement, payouts.

Wallet calls (`{chain_id, to, data, value}`, value in wei as a decimal string) are what a
requester's wallet signs and sends itself; the node never holds requester keys.

- `GET /v1/jobs/{jobId}/funding`: the escrow deposit of an `awaiting_funding` job
  (409 NOT_AWAITING_FUNDING otherwise). Owner only, like every /v1 job route. (Seed 000
  uploads take no credentials: their funding call is on the upload response and on
  `GET /jobs/image_processing/get-job/{id}` while the job awaits funding; the requester
  proves the address by funding from it.)
- `GET /jobs/{id}/funding` (seed 000 style: no credentials; same `{success, data}`
  envelope): the same for a seed 000 (`image_processing`) job, whose upload took no
  credentials either; other jobs' funding needs the owner's credentials (404 here).
- `GET /v1/jobs/{jobId}/cancel-call`: the escrow `cancel` of a funded job that no
  provider is bound to on chain (the refund comes from the contract; the watcher cancels
  the job when it sees it). Cancelling a funded job through the job APIs answers 409
  CANCEL_ON_CHAIN pointing here.
- `GET /v1/jobs/{jobId}/accept-call`: the escrow `accept` of a submitted result (pays the
  provider at once, without waiting for the challenge window).
- `GET /v1/jobs/{jobId}/settlement` and `GET /v1/payouts?provider=&requester=&limit=`:
  read from applied `JobSettled` events (amount, recipient, fee, tx hash, block, block
  timestamp). They need no credentials: everything in them is public on chain, and
  explorers and providers read them.
"""

from __future__ import annotations

from typing import Annotated, Any

from eth_utils import is_hex_address
from fastapi import APIRouter, Path, Query, Request

from marketplace.errors import BadQuery, UpstreamUnavailable
from marketplace.jobs.ids import parse_job_id
from node.chain import service
from node.deps import PrincipalDep, SessionDep
from node.jobs.service import get_owned_job

router = APIRouter(prefix="/v1", tags=["escrow (funding, settlement, payouts)"])
seed000_router = APIRouter(tags=["seed-000 datasets"])

JobIdPath = Annotated[str, Path(alias="jobId", description="e.g. job_5")]


def _host(request: Request) -> Any:
    host = getattr(request.app.state, "chain", None)
    if host is None or not host.escrow_address:
        raise UpstreamUnavailable("the chain or its escrow contract is not available")
    return host


def _ok(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data}


@router.get("/jobs/{jobId}/funding")
def job_funding(
    job_id: JobIdPath, request: Request, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    """What the requester's wallet signs to deposit the job's reward."""
    job = get_owned_job(session, principal, job_id)
    return _ok(service.funding_for_job(session, _host(request), job))


@seed000_router.get("/jobs/{job_id}/funding")
def seed000_job_funding(job_id: str, request: Request, session: SessionDep) -> dict[str, Any]:
    """The funding call of a seed 000 job awaiting its deposit (no credentials)."""
    from node.datasets.service import JOB_TYPE, DatasetService

    job = DatasetService.get_job(session, job_id, job_type=JOB_TYPE)
    return _ok(service.funding_for_job(session, _host(request), job))


@router.get("/jobs/{jobId}/cancel-call")
def job_cancel_call(
    job_id: JobIdPath, request: Request, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    """What the requester's wallet signs to cancel a funded, unbound job (refund)."""
    job = get_owned_job(session, principal, job_id)
    return _ok(service.cancel_call(session, _host(request), job))


@router.get("/jobs/{jobId}/accept-call")
def job_accept_call(
    job_id: JobIdPath, request: Request, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    """What the requester's wallet signs to accept the submitted result (pays now)."""
    job = get_owned_job(session, principal, job_id)
    return _ok(service.accept_call(session, _host(request), job))


@router.get("/jobs/{jobId}/settlement")
def job_settlement(job_id: JobIdPath, session: SessionDep) -> dict[str, Any]:
    """How the job's escrow was settled (404 NOT_FOUND before it is)."""
    return _ok(service.settlement_for_job(session, parse_job_id(job_id)))


def _address(value: str | None, name: str) -> str | None:
    if value is not None and not is_hex_address(value):
        raise BadQuery(f"`{name}` must be a 0x address", details={name: value})
    return value


@router.get("/payouts")
def payouts(
    session: SessionDep,
    provider: Annotated[str | None, Query(max_length=42)] = None,
    requester: Annotated[str | None, Query(max_length=42)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Settlements, newest first, optionally of one provider and/or one requester."""
    rows = service.list_payouts(
        session,
        provider=_address(provider, "provider"),
        requester=_address(requester, "requester"),
        limit=limit,
    )
    return {**_ok(rows), "pagination": {"limit": limit, "count": len(rows)}}
