"""Provider routes of the canonical API: registry, long-poll claim, fenced job writes.

POST /v1/providers                    register or update the caller (wallet) as provider;
                                      `api_keys` (provider keys) join workspace pools
GET  /v1/providers                    the registry, with online status and active jobs
POST /v1/providers/claim/end          end the caller's open long-polls (a draining provider)
POST /v1/providers/claim              lease a job (open market, or a pool the provider was
                                      admitted to); long-polls up to `wait_seconds`; 204 if none
POST /v1/jobs/{id}/heartbeat|start|progress|logs|metrics|result|fail|release   carry `attempt`
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from marketplace.errors import JobNotFound, LeaseExpired, NotLeaseHolder, StaleAttempt
from marketplace.jobs.ids import format_job_id, parse_job_id
from marketplace.leases import (
    Claim,
    JobOutcome,
    Lease,
    LogsAccepted,
    MetricsAccepted,
    V1Ok,
)
from node.auth.deps import PrincipalDep
from node.deps import (
    SessionDep,
    SettingsDep,
    model_response,
    plain_json_body,
    settings_of,
)
from node.jobs.events import LogLine
from node.metrics import CLAIM_WAIT
from node.openapi import raises
from node.providers import service
from node.providers.claims import ENDED, Attempt, claims_of, lease_of
from node.providers.deps import claim_bearer, notifier_of
from node.providers.notifier import JobNotifier
from node.providers.schemas import (
    AttemptBody,
    ClaimRequest,
    FailBody,
    LogsBody,
    MetricsBody,
    PoolRead,
    ProgressBody,
    ProviderRead,
    RegisteredProvider,
    RegisterProvider,
    ReleaseBody,
    ResultBody,
)

router = APIRouter(prefix="/v1", tags=["providers"])
# What a write under a lease answers when the lease is not the caller's current one.
LEASE_ERRORS = (StaleAttempt, NotLeaseHolder, LeaseExpired)


def ok(data: Any) -> dict[str, Any]:
    """The canonical `/v1` envelope."""
    return {"success": True, "data": data}


@router.post("/providers", status_code=201)
def register(body: RegisterProvider, principal: PrincipalDep, session: SessionDep) -> Any:
    """Register (or update) the caller's wallet as a provider. `api_keys`: `provider` keys
    of the workspaces whose private pools it joins (403 NOT_ADMITTED for a key that is
    not one); without them it is offered the open market (escrowed jobs) only."""
    provider, admissions = service.register(session, principal, body)
    pools = [
        PoolRead(workspace_id=a.workspace_id, api_key_id=key.id, key_prefix=key.prefix)
        for a, key in admissions
    ]
    return ok(RegisteredProvider(**ProviderRead.model_validate(provider).model_dump(), pools=pools))


@router.get("/providers")
def list_providers(
    principal: PrincipalDep, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    return ok([ProviderRead(**p) for p in service.describe(session, settings)])


@router.post(
    "/providers/claim",
    response_model=V1Ok[Claim],
    responses={204: {"description": "No job within the wait"}},
    dependencies=[Depends(claim_bearer)],
)
async def claim(body: ClaimRequest, request: Request, settings: SettingsDep) -> Response:
    """The caller's credential is checked in the first attempt's transaction, not by a
    dependency whose session (and pooled connection) would stay open for the whole wait:
    each attempt goes in one transaction with the attempts of the moment
    (`node.providers.claims`), and no connection is held while the poll waits."""
    notifier: JobNotifier = notifier_of(request)
    claims = claims_of(request)
    wait = min(body.wait_seconds, settings.leases.claim_wait_max_seconds)
    started = time.monotonic()
    deadline = started + wait
    attempt = Attempt(request, settings, body.job_types, _job_ids(body.exclude_job_ids), started)
    first = True
    while True:
        seen = notifier.generation
        # a poll its provider walked away from gets no lease
        if not first and await request.is_disconnected():
            return Response(status_code=204)
        first = False
        outcome = await claims.submit(attempt)  # with the attempts of the moment
        if outcome == ENDED:
            return Response(status_code=204)
        if isinstance(outcome, Claim):
            CLAIM_WAIT.labels("claimed").observe(time.monotonic() - started)
            return model_response(V1Ok[Claim](data=outcome))
        remaining = deadline - time.monotonic()
        if remaining <= 0 or notifier.closed or await request.is_disconnected():
            CLAIM_WAIT.labels("empty").observe(time.monotonic() - started)
            return Response(status_code=204)
        await notifier.wait(seen, min(remaining, settings.leases.claim_poll_seconds))


async def claim_at_once(request: Request) -> Response | None:
    """`claim` in front of routing (`node.app.FAST_PATHS`), for a JSON body that is a
    valid claim: every provider asks many times a minute, and FastAPI's request handling
    (routing, dependency solving, body reading) was a quarter of a claim's event loop
    time (issue 12). None for any other body: the route decides it (400). The credential
    is checked by `claim` itself either way, in its first attempt's transaction."""
    body = await plain_json_body(request, ClaimRequest)
    if body is None:
        return None
    return await claim(body, request, settings_of(request))


@router.post(
    "/providers/claim/end",
    status_code=204,
    response_class=Response,
    responses={204: {"description": "The caller's open claim long-polls were ended"}},
)
async def end_claims(request: Request, principal: PrincipalDep) -> Response:
    """End the caller's open claim long-polls now (a provider that starts draining): each
    answers 204 at once and is handed no job, so nothing is leased to a provider that
    stopped listening."""
    notifier_of(request).end_polls(principal.subject)
    return Response(status_code=204)


def _job_id(job_id: str) -> int:
    return parse_job_id(job_id)


def _job_ids(job_ids: list[str]) -> set[int]:
    """The ids among `job_ids` that can name a job (others name nothing to skip)."""
    out = set()
    for job_id in job_ids:
        with contextlib.suppress(JobNotFound):
            out.add(parse_job_id(job_id))
    return out


@router.post("/jobs/{job_id}/heartbeat", response_model=V1Ok[Lease])
@raises(*LEASE_ERRORS)
def heartbeat(
    job_id: str,
    body: AttemptBody,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    provider = service.require_provider(session, principal)
    job = service.heartbeat(session, settings, provider, _job_id(job_id), body.attempt)
    return ok(lease_of(job))


@router.post("/jobs/{job_id}/start", response_model=V1Ok[Lease])
@raises(*LEASE_ERRORS)
def start(
    job_id: str,
    body: AttemptBody,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    provider = service.require_provider(session, principal)
    return ok(lease_of(service.start(session, settings, provider, _job_id(job_id), body.attempt)))


@router.post("/jobs/{job_id}/progress", response_model=V1Ok[Lease])
@raises(*LEASE_ERRORS)
def progress(
    job_id: str,
    body: ProgressBody,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    provider = service.require_provider(session, principal)
    job = service.progress(
        session,
        settings,
        provider,
        _job_id(job_id),
        body.attempt,
        body.percent,
        body.message,
        body.metrics,
    )
    return ok(lease_of(job))


@router.post("/jobs/{job_id}/logs", response_model=V1Ok[LogsAccepted])
@raises(*LEASE_ERRORS)
def logs(
    job_id: str, body: LogsBody, principal: PrincipalDep, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    provider = service.require_provider(session, principal)
    count = service.append_logs(
        session,
        settings,
        provider,
        _job_id(job_id),
        body.attempt,
        [LogLine(entry.line, entry.level, entry.stream) for entry in body.lines],
    )
    return ok(LogsAccepted(accepted=count))


@router.post("/jobs/{job_id}/metrics", response_model=V1Ok[MetricsAccepted])
@raises(*LEASE_ERRORS)
def metrics(
    job_id: str,
    body: MetricsBody,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Resource samples (CPU millicores, memory, cumulative network bytes, GPU) and
    per-epoch training metrics of the leased job; they renew the lease, as log lines do."""
    provider = service.require_provider(session, principal)
    got = service.append_metrics(session, settings, provider, _job_id(job_id), body)
    return ok(MetricsAccepted(samples=got.samples, epochs=got.epochs, dropped=got.dropped))


@router.post("/jobs/{job_id}/result", response_model=V1Ok[JobOutcome])
@raises(*LEASE_ERRORS)
def result(
    job_id: str,
    body: ResultBody,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    provider = service.require_provider(session, principal)
    job = service.submit_result(
        session,
        settings,
        provider,
        _job_id(job_id),
        body.attempt,
        body.result_cid,
        body.result,
        body.result_type,
    )
    return ok(
        JobOutcome(job_id=format_job_id(job.id), status=job.status, result_cid=job.result_cid)
    )


@router.post("/jobs/{job_id}/fail", response_model=V1Ok[JobOutcome])
@raises(*LEASE_ERRORS)
def fail(
    job_id: str, body: FailBody, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    provider = service.require_provider(session, principal)
    job = service.fail(
        session,
        provider,
        _job_id(job_id),
        body.attempt,
        body.error,
        body.retryable,
        result_cid=body.result_cid,
        result=body.result,
        result_type=body.result_type,
    )
    return ok(JobOutcome(job_id=format_job_id(job.id), status=job.status))


@router.post("/jobs/{job_id}/release", response_model=V1Ok[JobOutcome])
@raises(*LEASE_ERRORS)
def release(
    job_id: str, body: ReleaseBody, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    provider = service.require_provider(session, principal)
    job = service.release(session, provider, _job_id(job_id), body.attempt, body.reason)
    return ok(JobOutcome(job_id=format_job_id(job.id), status=job.status))
