"""Provider routes of the canonical API: registry, long-poll claim, fenced job writes.

POST /v1/providers                    register or update the caller (wallet) as provider
GET  /v1/providers                    the registry, with online status and active jobs
POST /v1/providers/claim              lease a job; long-polls up to `wait_seconds`; 204 if none
POST /v1/jobs/{id}/heartbeat|start|progress|logs|result|fail|release   carry `attempt`
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from marketplace.jobs.ids import format_job_id, parse_job_id
from node.chain.watcher import wake_chain
from node.db import session_scope
from node.deps import PrincipalDep, SessionDep, SettingsDep
from node.jobs.models import Job
from node.providers import service
from node.providers.notifier import JobNotifier
from node.providers.schemas import (
    AttemptBody,
    ClaimRequest,
    FailBody,
    LogsBody,
    ProgressBody,
    ProviderRead,
    RegisterProvider,
    ReleaseBody,
    ResultBody,
)
from node.providers.vouchers import assignment_voucher, enqueue_assignment

router = APIRouter(prefix="/v1", tags=["providers"])


def job_for_provider(job: Job) -> dict[str, Any]:
    """What a provider needs to run a job."""
    return {
        "id": format_job_id(job.id),
        "type": job.job_type,
        "status": job.status,
        "spec": job.spec,
        "folder_cid": job.folder_cid,
        "metadata_cid": job.metadata_cid,
        "requester_address": job.requester_address,
        "reward_wei": str(job.reward_wei),
        "attempt": job.attempt,
        "max_retries": job.max_retries,
        "deadline_at": job.deadline_at,
    }


def _lease_out(job: Job) -> dict[str, Any]:
    return {
        "lease_id": job.lease_id,
        "job_id": format_job_id(job.id),
        "attempt": job.attempt,
        "expires_at": job.lease_expires_at,
        "status": job.status,
    }


def ok(data: Any) -> dict[str, Any]:
    """The canonical `/v1` envelope."""
    return {"success": True, "data": data}


@router.post("/providers", status_code=201)
def register(body: RegisterProvider, principal: PrincipalDep, session: SessionDep) -> Any:
    return ok(ProviderRead.model_validate(service.register(session, principal, body)))


@router.get("/providers")
def list_providers(
    principal: PrincipalDep, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    return ok([ProviderRead(**p) for p in service.describe(session, settings)])


@router.post("/providers/claim", responses={204: {"description": "No job within the wait"}})
async def claim(
    body: ClaimRequest, request: Request, principal: PrincipalDep, settings: SettingsDep
) -> Any:
    notifier: JobNotifier = request.app.state.job_notifier
    factory = request.app.state.sessionmaker
    chain = getattr(request.app.state, "chain", None)
    wait = min(body.wait_seconds, settings.leases.claim_wait_max_seconds)
    deadline = time.monotonic() + wait

    def attempt_claim() -> dict[str, Any] | None:
        with session_scope(factory) as session:
            provider = service.require_provider(session, principal)
            got = service.claim(session, settings, provider, body.job_types)
            if got is None:
                return None
            queued = enqueue_assignment(session, chain, got.job, provider.address, got.attempt)
            voucher = assignment_voucher(chain, got.job, provider.address, got.attempt)
            result = ok(
                {"lease": _lease_out(got.job), "job": job_for_provider(got.job), "voucher": voucher}
            )
        if queued:
            wake_chain(request.app)  # committed: the outbox sends the assignment now
        return result

    while True:
        seen = notifier.generation
        result = await run_in_threadpool(attempt_claim)
        if result is not None:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0 or await request.is_disconnected():
            return Response(status_code=204)
        await notifier.wait(seen, min(remaining, settings.leases.claim_poll_seconds))


def _job_id(job_id: str) -> int:
    return parse_job_id(job_id)


@router.post("/jobs/{job_id}/heartbeat")
def heartbeat(
    job_id: str,
    body: AttemptBody,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    provider = service.require_provider(session, principal)
    job = service.heartbeat(session, settings, provider, _job_id(job_id), body.attempt)
    return ok(_lease_out(job))


@router.post("/jobs/{job_id}/start")
def start(
    job_id: str,
    body: AttemptBody,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    provider = service.require_provider(session, principal)
    return ok(_lease_out(service.start(session, settings, provider, _job_id(job_id), body.attempt)))


@router.post("/jobs/{job_id}/progress")
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
    return ok(_lease_out(job))


@router.post("/jobs/{job_id}/logs")
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
        [(entry.line, entry.level) for entry in body.lines],
    )
    return ok({"accepted": count})


@router.post("/jobs/{job_id}/result")
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
    return ok({"job_id": format_job_id(job.id), "status": job.status, "result_cid": job.result_cid})


@router.post("/jobs/{job_id}/fail")
def fail(
    job_id: str, body: FailBody, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    provider = service.require_provider(session, principal)
    job = service.fail(session, provider, _job_id(job_id), body.attempt, body.error, body.retryable)
    return ok({"job_id": format_job_id(job.id), "status": job.status})


@router.post("/jobs/{job_id}/release")
def release(
    job_id: str, body: ReleaseBody, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    provider = service.require_provider(session, principal)
    job = service.release(session, provider, _job_id(job_id), body.attempt, body.reason)
    return ok({"job_id": format_job_id(job.id), "status": job.status})


async def run_reaper(app: Any) -> None:
    """Background loop: return expired leases to the queue every few seconds."""
    settings = app.state.settings
    factory = app.state.sessionmaker

    def reap_once() -> list[int]:
        with session_scope(factory) as session:
            return service.reap_expired(session)
        return []

    while True:
        try:
            await run_in_threadpool(reap_once)
        except Exception:  # the loop must survive a transient DB error
            import logging

            logging.getLogger("dcm.reaper").exception("reaper pass failed")
        await asyncio.sleep(settings.leases.reaper_interval_seconds)
