"""Seed 000 routes (`/jobs/...`): dataset upload, zip download, open jobs, job detail.

As in the seed, these take no credentials: the requester address is proven later, when
the escrow is funded from it. A job with a reward starts `awaiting_funding`; the upload
response and `get-job` carry its `funding` call (`{chain_id, to, data, value}`) until the
chain watcher sees the requester's deposit (`node.chain`); only then is it listed by
`get-jobs`. Size and file-count limits (`settings.upload`) apply.
The upload answers 201 Created (a job was created; Express clients accept any 2xx).
"""

from __future__ import annotations

import shutil
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from node.chain.service import funding_or_none
from node.datasets.multipart import receive_upload
from node.datasets.schemas import ImageJobDetailOut, ImageJobOut, UploadOut
from node.datasets.service import JOB_TYPE, DatasetService, purge_stale_uploads
from node.deps import SessionDep, SettingsDep

router = APIRouter(tags=["seed-000 datasets"])


def get_dataset_service(request: Request, settings: SettingsDep) -> DatasetService:
    return DatasetService(request.app.state.content, settings.upload)


ServiceDep = Annotated[DatasetService, Depends(get_dataset_service)]


@router.post(
    "/jobs/image_processing/upload",
    status_code=201,
    response_model=UploadOut,
    openapi_extra={
        "requestBody": {
            "content": {"multipart/form-data": {"schema": {"type": "object"}}},
            "required": True,
        }
    },
)
async def upload_image_processing_job(
    request: Request, session: SessionDep, settings: SettingsDep, service: ServiceDep
) -> JSONResponse:
    """Upload a dataset (many files with relative names, or one .zip) and create a job."""
    uploads = settings.data_dir / "tmp" / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    await run_in_threadpool(purge_stale_uploads, uploads)
    workdir = uploads / uuid.uuid4().hex
    try:
        received = await receive_upload(request, workdir, settings.upload)
        job = await run_in_threadpool(service.create_upload_job, session, received)
        host = getattr(request.app.state, "chain", None)
        # registers the job's escrow key with the job, in the same transaction
        funding = await run_in_threadpool(funding_or_none, session, host, job)
        body = UploadOut(job=ImageJobDetailOut.with_funding(job, funding))
        return JSONResponse(body.model_dump(), status_code=201)
    finally:
        await run_in_threadpool(shutil.rmtree, workdir, True)


@router.get("/jobs/get-dataset/{job_id}")
def get_dataset(job_id: str, session: SessionDep, service: ServiceDep) -> StreamingResponse:
    """The job's dataset as a zip, streamed from the content store, same bytes every time."""
    job = service.get_job(session, job_id)
    archive = service.dataset_zip(job)
    headers = {
        "Content-Disposition": f'attachment; filename="dataset_{job.id}.zip"',
        "Content-Length": str(archive.content_length),
        "ETag": f'"{job.folder_cid}.zip"',
    }
    return StreamingResponse(
        iterate_in_threadpool(iter(archive)), media_type="application/zip", headers=headers
    )


@router.get("/jobs/get-jobs", response_model=list[ImageJobOut])
def get_jobs(session: SessionDep) -> list[ImageJobOut]:
    """Image-processing jobs open to providers (pending), oldest first, at most 1000.

    Only `image_processing` jobs: this list is what seed-000 providers poll, and every item
    must be fetchable from `/jobs/image_processing/get-job/{id}`; container and other job
    types are listed by their own dialects.
    """
    return [ImageJobOut.from_job(job) for job in DatasetService.open_jobs(session)]


@router.get("/jobs/image_processing/get-job/{job_id}", response_model=ImageJobDetailOut)
def get_image_processing_job(
    job_id: str, request: Request, session: SessionDep
) -> ImageJobDetailOut:
    """One image-processing job in the seed's detail shape, with its funding call while
    it awaits its escrow deposit."""
    job = DatasetService.get_job(session, job_id, job_type=JOB_TYPE)
    funding = funding_or_none(session, getattr(request.app.state, "chain", None), job)
    return ImageJobDetailOut.with_funding(job, funding)
