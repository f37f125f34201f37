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
- TrainChain's two-phase creation on the funding gate (seed 000, no credentials; rules in
  `unfunded.py`): `POST /jobs/confirm/{id}` answers `{message, job}` once the node has
  seen the deposit (409 NOT_FUNDED with the funding call otherwise), `GET
  /jobs/retry-info/{id}` the funding call and the `delete_message` to sign instead,
  `DELETE /jobs/delete/{id}` `{requesterAddress, signature}` cancels the unfunded job
  (401 INVALID_SIGNATURE, 403 NOT_REQUESTER, 409 JOB_FUNDED).
- `GET /v1/jobs/{jobId}/cancel-call`: the escrow `cancel` of a funded job that no
  provider is bound to on chain, for a requester who refunds itself (the node refunds a
  job cancelled through the job APIs on its own: it unassigns and refunds).
- `GET /v1/jobs/{jobId}/accept-call`: the escrow `accept` of a submitted (or disputed)
  result (pays the provider at once, without waiting for the challenge window).
- `POST /v1/jobs/{jobId}/dispute`: the escrow `dispute` of a submitted result, within the
  challenge window (the arbiter rules; its silence refunds the requester). POST because
  asking is logged on the job; the node still never signs for the requester.
- `GET /v1/jobs/{jobId}/escrow`: what the chain holds for the job (its key, status, amount,
  binding, a result that exists only on chain with who submitted it and the node's
  verdict). No credentials: all of it is public on chain (the arbiter reads it).
- `GET /v1/jobs/{jobId}/settlement` and `GET /v1/payouts?provider=&requester=&limit=`:
  read from applied `JobSettled` events (amount, recipient, fee, deferred payments, tx
  hash, block, block timestamp); a job's settlement is that of a deposit the node took
  for it, never the refund of one it refused. No credentials either.
"""

from __future__ import annotations

from typing import Annotated, Any

from eth_utils import is_hex_address
from fastapi import APIRouter, Path, Query, Request

from marketplace.errors import (
    BadQuery,
    ChainError,
    Conflict,
    InvalidField,
    InvalidSignature,
    InvalidTransition,
    JobFunded,
    JobNotFound,
    NotAwaitingFunding,
    NotFound,
    NotFunded,
    NotRequester,
    UpstreamUnavailable,
)
from marketplace.jobs.ids import parse_job_id
from node.auth.deps import PrincipalDep
from node.authz.policy import Action
from node.chain.deps import chain_of
from node.datasets.schemas import DeleteJobIn, ImageJobDetailOut, JobMessageOut, RetryInfoOut
from node.datasets.service import JOB_TYPE, DatasetService
from node.deps import SessionDep
from node.escrow import service, unfunded
from node.escrow.tick import wake_chain
from node.jobs.service import get_owned_job
from node.openapi import raises

router = APIRouter(prefix="/v1", tags=["escrow (funding, settlement, payouts)"])
seed000_router = APIRouter(tags=["seed-000 datasets"])

JobIdPath = Annotated[str, Path(alias="jobId", description="e.g. job_5")]


def _host(request: Request) -> Any:
    host = chain_of(request)
    if host is None or not host.escrow_address:
        raise UpstreamUnavailable("the chain or its escrow contract is not available")
    return host


def _ok(data: Any) -> dict[str, Any]:
    return {"success": True, "data": data}


@router.get("/jobs/{jobId}/funding")
@raises(NotAwaitingFunding, UpstreamUnavailable)
def job_funding(
    job_id: JobIdPath, request: Request, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    """What the requester's wallet signs to deposit the job's reward."""
    job = get_owned_job(session, principal, job_id)
    return _ok(service.funding_for_job(session, _host(request), job))


@seed000_router.get("/jobs/{job_id}/funding")
@raises(NotAwaitingFunding, UpstreamUnavailable)
def seed000_job_funding(job_id: str, request: Request, session: SessionDep) -> dict[str, Any]:
    """The funding call of a seed 000 job awaiting its deposit (no credentials)."""
    job = DatasetService.get_job(session, job_id, job_type=JOB_TYPE)
    return _ok(service.funding_for_job(session, _host(request), job))


def _seed000_job(session: Any, job_id: str) -> Any:
    return DatasetService.get_job(session, job_id, job_type=JOB_TYPE)


def _detail(session: Any, request: Request, job: Any) -> ImageJobDetailOut:
    host = chain_of(request)
    call = service.funding_or_none(session, host, job)
    return ImageJobDetailOut.with_funding(job, call)


@seed000_router.post("/jobs/confirm/{job_id}", response_model=JobMessageOut)
@raises(NotFunded)
def confirm_job(job_id: str, request: Request, session: SessionDep) -> JobMessageOut:
    """The job once the escrow holds its deposit (TrainChain's confirm after `createJob`);
    409 NOT_FUNDED saying what is missing (and wakes the chain watcher) otherwise."""
    job = _seed000_job(session, job_id)
    try:
        unfunded.confirmed(session, chain_of(request), job)
    except NotFunded:
        wake_chain(request.app)
        raise
    return JobMessageOut(message="Job confirmed successfully", job=_detail(session, request, job))


@seed000_router.get("/jobs/retry-info/{job_id}", response_model=RetryInfoOut)
@raises(NotAwaitingFunding, UpstreamUnavailable)
def retry_info(job_id: str, request: Request, session: SessionDep) -> RetryInfoOut:
    """What the requester's wallet signs for an unfunded job: its funding call, or the
    `delete_message` to delete it instead (409 NOT_AWAITING_FUNDING once funded)."""
    job = _seed000_job(session, job_id)
    info = unfunded.retry_info(session, _host(request), job)
    return RetryInfoOut(job=_detail(session, request, job), **info)


@seed000_router.delete("/jobs/delete/{job_id}")
@raises(InvalidField, InvalidSignature, NotRequester, JobFunded, InvalidTransition)
def delete_job(job_id: str, body: DeleteJobIn, session: SessionDep) -> dict[str, str]:
    """Delete (cancel for good) an unfunded job, proved by the requester's signature of
    its `delete_message`; a funded one is refused with 409 JOB_FUNDED."""
    job = _seed000_job(session, job_id)
    unfunded.delete_unfunded(session, job, body.requester_address, body.signature)
    return {"message": "Job deleted successfully"}


@router.get("/jobs/{jobId}/cancel-call")
@raises(Conflict, ChainError, UpstreamUnavailable)
def job_cancel_call(
    job_id: JobIdPath, request: Request, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    """What the requester's wallet signs to cancel a funded, unbound job (refund)."""
    job = get_owned_job(session, principal, job_id, Action.CANCEL_JOB)
    return _ok(service.cancel_call(session, _host(request), job))


@router.get("/jobs/{jobId}/accept-call")
@raises(Conflict, ChainError, UpstreamUnavailable)
def job_accept_call(
    job_id: JobIdPath, request: Request, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    """What the requester's wallet signs to accept the submitted result (pays now)."""
    job = get_owned_job(session, principal, job_id, Action.UPDATE_JOB)
    return _ok(service.accept_call(session, _host(request), job))


@router.post("/jobs/{jobId}/dispute")
@raises(Conflict, ChainError, UpstreamUnavailable)
def job_dispute(
    job_id: JobIdPath, request: Request, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    """What the requester's wallet signs to dispute the submitted result."""
    job = get_owned_job(session, principal, job_id, Action.UPDATE_JOB)
    return _ok(service.dispute_call(session, _host(request), job))


@router.get("/jobs/{jobId}/escrow")
@raises(JobNotFound, NotFound)
def job_escrow(job_id: JobIdPath, session: SessionDep) -> dict[str, Any]:
    """The job's escrow as the node last saw it on chain (404 before it has a key):
    public, like the chain it mirrors."""
    return _ok(service.escrow_of_job(session, parse_job_id(job_id)))


@router.get("/jobs/{jobId}/settlement")
@raises(JobNotFound, NotFound)
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
