"""TrainChain's contributor routes (seed 000 dialect, `/jobs/...`), for a provider signed
in with its wallet (`Authorization: Bearer` from `/auth/siwe`, registered with
`POST /v1/providers`). Rules in `node.providers.trainchain`; answers are TrainChain's
`{message, job}` with the seed 000 job object.

POST /jobs/contributor/apply            {jobId, contributorAddress}: claim that job (lease +
                                        on-chain assignment, as the daemon's claim)
POST /jobs/contributor/apply/initiate   the same (TrainChain's phase 1)
POST /jobs/contributor/apply/confirm    {jobId[, attempt]}: start it (claimed -> running)
POST /jobs/contributor/apply/revert     {jobId[, attempt]}: release it (back to pending)
GET  /jobs/contributor/get-job?contributorAddress=   its current job (201 + message: none)
GET  /jobs/contributor/all-jobs?contributorAddress=  its jobs, each with `payouts`
POST /jobs/model/upload                 multipart `jobId` (+ `attempt`) and `files`: the
                                        lease holder submits the trained model

Errors (`{"detail", "code"}`): 404 JOB_NOT_FOUND, 403 ADDRESS_MISMATCH (not the signed-in
wallet), 403 PROVIDER_NOT_REGISTERED, 409 JOB_NOT_CLAIMABLE, 409 NOT_LEASE_HOLDER /
STALE_ATTEMPT / LEASE_EXPIRED (not the lease holder), 422 INVALID_FIELD (a malformed
address in a body), 400 INVALID_QUERY (in a query).
"""

from __future__ import annotations

import shutil
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from marketplace.datasets.errors import MalformedMultipart, UnsafeFilename, UnsupportedMediaType
from marketplace.errors import (
    AddressMismatch,
    BadQuery,
    InvalidField,
    JobNotClaimable,
    JobNotFound,
    LeaseExpired,
    NotLeaseHolder,
    StaleAttempt,
    UpstreamUnavailable,
)
from marketplace.leases import Lease
from node.auth.deps import PrincipalDep
from node.chain.deps import chain_of
from node.content.deps import ContentDep
from node.datasets.multipart import receive_upload
from node.datasets.schemas import ImageJobDetailOut, ImageJobOut
from node.db import session_scope
from node.deps import SessionDep, SettingsDep, sessions_of
from node.escrow.tick import wake_chain
from node.openapi import raises
from node.providers import service, trainchain
from node.providers.claims import lease_of

router = APIRouter(tags=["seed-000 contributors"])
LEASE_ERRORS = (StaleAttempt, NotLeaseHolder, LeaseExpired)


class ApplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    job_id: int | str = Field(alias="jobId")
    contributor_address: str = Field(alias="contributorAddress", max_length=64)


class LeaseStepIn(BaseModel):
    """`attempt` (optional): the lease's attempt the caller holds, for strict fencing;
    the job's current attempt when absent (the holder check still applies)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    job_id: int | str = Field(alias="jobId")
    contributor_address: str | None = Field(None, alias="contributorAddress", max_length=64)
    attempt: int | None = Field(None, ge=1)


class AppliedOut(BaseModel):
    message: str
    job: ImageJobDetailOut
    lease: Lease
    voucher: dict[str, Any] | None = Field(
        None, description="EIP-712 assignment voucher (escrowed jobs): binds on chain"
    )


class ContributorJobOut(ImageJobOut):
    payouts: list[dict[str, Any]] = Field(
        default_factory=list, description="Escrow settlements that paid this contributor"
    )


class ModelUploadOut(BaseModel):
    message: str = "Trained model uploaded successfully"
    job: ImageJobDetailOut
    submit_call: dict[str, Any] | None = Field(
        None,
        description="What the contributor's wallet signs to put the result digest on chain "
        "(`{chain_id, to, data, value}`, escrow `submitWithVoucher`); null without escrow",
    )


def _detail(job: Any) -> ImageJobDetailOut:
    return ImageJobDetailOut.with_funding(job, None)


def _apply(
    message: str, body: ApplyIn, request: Request, principal: Any, settings: Any
) -> AppliedOut:
    # Its own transaction, as the daemon's claim route: the assignment's outbox row is
    # committed before the chain tick is woken to send it.
    with session_scope(sessions_of(request)) as session:
        provider = trainchain.contributor(session, principal, body.contributor_address)
        got = trainchain.apply(session, settings, chain_of(request), provider, body.job_id)
        out = AppliedOut(
            message=message, job=_detail(got.job), lease=lease_of(got.job), voucher=got.voucher
        )
    if got.queued:
        wake_chain(request.app)
    return out


@router.post("/jobs/contributor/apply", response_model=AppliedOut)
@raises(InvalidField, AddressMismatch, JobNotFound, JobNotClaimable)
def apply(
    body: ApplyIn, request: Request, principal: PrincipalDep, settings: SettingsDep
) -> AppliedOut:
    """Claim the chosen open job for the signed-in provider (lease + on-chain assignment)."""
    return _apply("Job application successful", body, request, principal, settings)


@router.post("/jobs/contributor/apply/initiate", response_model=AppliedOut)
@raises(InvalidField, AddressMismatch, JobNotFound, JobNotClaimable)
def apply_initiate(
    body: ApplyIn, request: Request, principal: PrincipalDep, settings: SettingsDep
) -> AppliedOut:
    """Phase 1 of TrainChain's apply: the claim (the lease reserves the job)."""
    return _apply("Job acceptance initiated", body, request, principal, settings)


def _provider(session: Any, principal: Any, body: LeaseStepIn) -> Any:
    if body.contributor_address is not None:
        return trainchain.contributor(session, principal, body.contributor_address)
    return service.require_provider(session, principal)


@router.post("/jobs/contributor/apply/confirm")
@raises(InvalidField, AddressMismatch, JobNotFound, *LEASE_ERRORS)
def apply_confirm(
    body: LeaseStepIn, principal: PrincipalDep, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Phase 2: the lease holder starts the job (claimed -> running, `in_progress`)."""
    provider = _provider(session, principal, body)
    job = trainchain.start(session, settings, provider, body.job_id, body.attempt)
    return {"message": "Job acceptance confirmed", "job": _detail(job).model_dump()}


@router.post("/jobs/contributor/apply/revert")
@raises(InvalidField, AddressMismatch, JobNotFound, *LEASE_ERRORS)
def apply_revert(body: LeaseStepIn, principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    """The lease holder hands the job back (pending again; the attempt counts)."""
    provider = _provider(session, principal, body)
    job = trainchain.release(session, provider, body.job_id, body.attempt)
    return {"message": "Job acceptance reverted", "job": _detail(job).model_dump()}


ContributorQuery = Annotated[str, Query(alias="contributorAddress", max_length=64)]


@router.get(
    "/jobs/contributor/get-job",
    response_model=ImageJobOut,
    responses={201: {"description": "No job assigned: `{message}` (as TrainChain answers)"}},
)
@raises(BadQuery)
def get_contributor_job(session: SessionDep, contributor_address: ContributorQuery) -> Any:
    """The job whose live lease the contributor holds; 201 `{message}` when none."""
    job = trainchain.current_job(session, contributor_address)
    if job is None:
        return JSONResponse({"message": "No job assigned to this contributor"}, status_code=201)
    return ImageJobOut.from_job(job)


@router.get("/jobs/contributor/all-jobs", response_model=list[ContributorJobOut])
@raises(BadQuery)
def all_contributor_jobs(
    session: SessionDep, contributor_address: ContributorQuery
) -> list[ContributorJobOut]:
    """Every job the contributor holds or last held the lease of, newest first, each with
    the escrow's payouts to it."""
    return [
        ContributorJobOut(**ImageJobOut.from_job(job).model_dump(), payouts=payouts)
        for job, payouts in trainchain.history(session, contributor_address)
    ]


MODEL_FORM = {
    "type": "object",
    "required": ["jobId", "files"],
    "properties": {
        "jobId": {"type": "string"},
        "attempt": {"type": "string"},
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
    },
}


@router.post(
    "/jobs/model/upload",
    response_model=ModelUploadOut,
    openapi_extra={
        "requestBody": {
            "content": {"multipart/form-data": {"schema": MODEL_FORM}},
            "required": True,
        }
    },
)
@raises(
    MalformedMultipart,
    UnsafeFilename,
    UnsupportedMediaType,
    InvalidField,
    JobNotFound,
    UpstreamUnavailable,
    *LEASE_ERRORS,
)
async def upload_model(
    request: Request, principal: PrincipalDep, settings: SettingsDep, content: ContentDep
) -> ModelUploadOut:
    """The lease holder submits its trained model (weights, exported model, metrics.json,
    train.log, ...): stored as one directory, recorded as the job's result exactly as the
    daemon's report; answers the wallet call that puts its digest on chain."""
    uploads = settings.data_dir / "tmp" / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    workdir = uploads / uuid.uuid4().hex
    factory = sessions_of(request)
    chain = chain_of(request)
    try:
        received = await receive_upload(request, workdir, settings.upload)
        job_id = received.fields.get("jobId")
        if not job_id:
            raise InvalidField("jobId is required", details={"field": "jobId"})
        attempt = _int_field(received.fields.get("attempt"), "attempt")

        def submit() -> ModelUploadOut:
            # The lease is checked before a byte is stored; the files are stored outside
            # any transaction (on SQLite the store's pin would wait on this request's
            # writes); then the result is recorded under the lease, which is checked again.
            with session_scope(factory) as session:
                provider = service.require_provider(session, principal)
                job, held = trainchain.check_holder(session, provider, job_id, attempt)
                checked = job.id
            stored = trainchain.store_model(content, received)
            try:
                with session_scope(factory) as session:
                    provider = service.require_provider(session, principal)
                    job, call = trainchain.submit_model(
                        session, settings, chain, provider, checked, held, stored
                    )
                    return ModelUploadOut(job=_detail(job), submit_call=call)
            except BaseException:
                trainchain.release_model(content, stored)
                raise

        return await run_in_threadpool(submit)
    finally:
        await run_in_threadpool(shutil.rmtree, workdir, True)


def _int_field(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or int(value) < 1:
        raise InvalidField(f"{name} must be a positive integer", details={"field": name})
    return int(value)
