"""Seed 000 routes (`/jobs/...`, TrainChain's backend): dataset upload, zip download, open
jobs, job detail, the requester's jobs (`my-requests`) and its trained model (`get-model`).

As in the seed, these take no credentials: the requester address is proven later, when
the escrow is funded from it. They show the open market only (escrowed jobs): a private
job is 404 here, except its dataset, which whoever may read the job and the admitted
provider holding its lease fetch with their credentials (`node.authz.policy`).
A job with a reward starts `awaiting_funding`; the upload response and `get-job` carry
its `funding` call (`{chain_id, to, data, value}`) until the chain watcher sees the
requester's deposit (`node.chain`); only then is it listed by `get-jobs`. Size and
file-count limits (`settings.upload`) apply.
The upload answers 200, as TrainChain documents it.

The job object is TrainChain's (`node.datasets.schemas`): `status` in TrainChain's words,
mapped from the canonical state, which `dcm_status` carries:

    awaiting_funding -> unconfirmed; pending -> pending;
    claimed, running, submitted, disputed -> in_progress; completed -> completed;
    failed, expired -> failed; cancelled -> cancelled

and, once there are, `contributor_address` (the provider holding or last holding the
lease) and `model_cid` (the result's CID). `GET /jobs/get-model/{id}` serves that result
as `model_<id>.zip` (weights, exported model, metrics, training log; the same bytes every
time) as soon as it is submitted (404 MODEL_NOT_FOUND before). The funding gate's routes
(`confirm`, `delete`, `retry-info`) are in `node.escrow.router_jobs`, the contributor's
in `node.providers.router_trainchain`.
"""

from __future__ import annotations

import shutil
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from marketplace.content.errors import CidMismatch
from marketplace.datasets.errors import (
    DatasetNotFound,
    InvalidDataset,
    MalformedMultipart,
    UnsafeFilename,
    UnsupportedMediaType,
)
from marketplace.datasets.params import FIELDS
from marketplace.datasets.zipstream import StreamingZip
from marketplace.errors import (
    BadQuery,
    InsufficientStorage,
    InvalidField,
    ModelNotFound,
    UpstreamUnavailable,
)
from node.auth.deps import OptionalPrincipalDep
from node.content.deps import ContentDep
from node.content.uploads import raise_storage_error
from node.datasets.multipart import receive_upload
from node.datasets.schemas import ImageJobDetailOut, ImageJobOut, UploadOut
from node.datasets.service import (
    JOB_TYPE,
    DatasetService,
    model_zip,
    purge_stale_uploads,
    requester_jobs,
)
from node.deps import SessionDep, SettingsDep
from node.jobs.funding import FundingDep
from node.limits.rates import per_client
from node.openapi import binary, raises

router = APIRouter(tags=["seed-000 datasets"])


def get_dataset_service(content: ContentDep, settings: SettingsDep) -> DatasetService:
    return DatasetService(content, settings.upload)


ServiceDep = Annotated[DatasetService, Depends(get_dataset_service)]
# The seed's form: every parameter a string field, the dataset as `files` parts.
UPLOAD_FORM = {
    "type": "object",
    "required": [*FIELDS, "files"],
    "properties": {
        **{name: {"type": "string"} for name in FIELDS},
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
    },
}


@router.post(
    "/jobs/image_processing/upload",
    status_code=200,
    response_model=UploadOut,
    dependencies=[Depends(per_client("upload_per_client"))],
    openapi_extra={
        "requestBody": {
            "content": {"multipart/form-data": {"schema": UPLOAD_FORM}},
            "required": True,
        }
    },
)
@raises(
    MalformedMultipart,
    UnsafeFilename,
    UnsupportedMediaType,
    InvalidField,
    InvalidDataset,
    UpstreamUnavailable,
    CidMismatch,
    InsufficientStorage,
)
async def upload_image_processing_job(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    service: ServiceDep,
    funding: FundingDep,
) -> JSONResponse:
    """Upload a dataset (many files with relative names, or one .zip) and create a job."""
    uploads = settings.data_dir / "tmp" / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    await run_in_threadpool(purge_stale_uploads, uploads)
    workdir = uploads / uuid.uuid4().hex
    try:
        try:
            received = await receive_upload(request, workdir, settings.upload, stage=True)
            job = await run_in_threadpool(service.create_upload_job, session, received)
        except OSError as exc:  # a full disk is 507 INSUFFICIENT_STORAGE, nothing kept
            raise_storage_error(exc)
        # registers the job's escrow key with the job, in the same transaction
        call = await run_in_threadpool(funding.funding_call, session, job)
        body = UploadOut(job=ImageJobDetailOut.with_funding(job, call))
        return JSONResponse(body.model_dump(), status_code=200)
    finally:
        await run_in_threadpool(shutil.rmtree, workdir, True)


@router.get(
    "/jobs/get-dataset/{job_id}",
    response_class=StreamingResponse,
    responses=binary("application/zip", description="The dataset as a zip"),
)
@raises(DatasetNotFound, UpstreamUnavailable)
def get_dataset(
    job_id: str, session: SessionDep, service: ServiceDep, principal: OptionalPrincipalDep
) -> StreamingResponse:
    """The job's dataset as a zip, streamed from the content store, same bytes every time."""
    job = service.get_job_inputs(session, principal, job_id)
    return _zip_response(service.dataset_zip(job), f"dataset_{job.id}.zip", job.folder_cid)


def _zip_response(archive: StreamingZip, filename: str, cid: str | None) -> StreamingResponse:
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Content-Length": str(archive.content_length),
        "ETag": f'"{cid}.zip"',
    }
    return StreamingResponse(
        iterate_in_threadpool(iter(archive)), media_type="application/zip", headers=headers
    )


@router.get(
    "/jobs/get-model/{job_id}",
    response_class=StreamingResponse,
    responses=binary("application/zip", description="The trained model as a zip"),
)
@raises(ModelNotFound, UpstreamUnavailable)
def get_model(job_id: str, session: SessionDep, content: ContentDep) -> StreamingResponse:
    """The job's trained model as `model_<id>.zip` (its result directory: weights, exported
    model, metrics, training log), streamed from the content store, same bytes every
    time; 404 MODEL_NOT_FOUND until a result is submitted. No credentials, like the
    dataset: the result is public on the content network."""
    job = DatasetService.get_job(session, job_id, job_type=JOB_TYPE)
    return _zip_response(model_zip(content, job), f"model_{job.id}.zip", job.result_cid)


@router.get("/jobs/my-requests", response_model=list[ImageJobOut])
@raises(BadQuery)
def my_requests(
    session: SessionDep,
    requester_address: Annotated[str, Query(alias="requesterAddress", max_length=42)],
) -> list[ImageJobOut]:
    """The image-processing jobs `requesterAddress` posted, newest first, in every state
    (400 INVALID_QUERY for a malformed address)."""
    return [ImageJobOut.from_job(job) for job in requester_jobs(session, requester_address)]


@router.get("/jobs/get-jobs", response_model=list[ImageJobOut])
def get_jobs(session: SessionDep) -> list[ImageJobOut]:
    """Open-market image-processing jobs open to providers (pending), oldest first, at
    most 1000. Private jobs (no escrow) are offered to their workspace's pool only.

    Only `image_processing` jobs: this list is what seed-000 providers poll, and every item
    must be fetchable from `/jobs/image_processing/get-job/{id}`; container and other job
    types are listed by their own dialects.
    """
    return [ImageJobOut.from_job(job) for job in DatasetService.open_jobs(session)]


@router.get("/jobs/image_processing/get-job/{job_id}", response_model=ImageJobDetailOut)
def get_image_processing_job(
    job_id: str, session: SessionDep, funding: FundingDep
) -> ImageJobDetailOut:
    """One image-processing job in the seed's detail shape, with its funding call while
    it awaits its escrow deposit."""
    job = DatasetService.get_job(session, job_id, job_type=JOB_TYPE)
    return ImageJobDetailOut.with_funding(job, funding.funding_call(session, job))
