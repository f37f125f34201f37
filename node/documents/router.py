"""Seed 004 dialect: the asynchronous job worker's `/api/jobs/...`.

Envelopes as the seed writes them: `{"status": "success", "data": ...}`, errors
`{"status": "error", "error": {"code", "message"}}` (`node.errors`); a bad parameter is a
422 whose `details.field` names it (`parameters.extraction_method`, `jobs[1].job_type`).
`Authorization: Bearer` takes a workspace API key (`YOUR_API_KEY`) or a user token. The
rules are `node.documents.service`; fixed paths come before `/{job_id}`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from marketplace.errors import (
    ArchiveNotFound,
    BatchNotFound,
    InvalidField,
    TemplateNotFound,
    WebhookTargetRefused,
)
from node.auth.deps import PrincipalDep
from node.content.deps import ContentDep
from node.deps import SessionDep, SettingsDep
from node.documents import service
from node.documents.schemas import BatchSubmit, JobSubmit, Success, TemplateSave
from node.openapi import binary, raises

router = APIRouter(prefix="/api/jobs", tags=["jobs (seed 004: document job worker)"])

JobId = Annotated[str, Path(max_length=32, description="e.g. job_5")]


@router.post("/", response_model=Success)
@router.post("", response_model=Success, include_in_schema=False)
@raises(InvalidField, WebhookTargetRefused)
def create_job(
    body: JobSubmit,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
    store: ContentDep,
) -> Success:
    """Create a job (`pdf`, `transformer`, `session`); 200 with the job, `pending`."""
    job = service.submit_one(
        session, store, settings, principal, body.job_type, body.parameters, body.user_id
    )
    summary = service.job_summary(job)
    return Success(data={"job_id": summary["job_id"], "job": summary})


@router.post("/batch", response_model=Success)
@raises(InvalidField, WebhookTargetRefused)
def create_batch(
    body: BatchSubmit,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
    store: ContentDep,
) -> Success:
    """Create a batch of jobs; the batch with its `job_count` and jobs."""
    items = [(j.job_type, j.parameters, j.user_id) for j in body.jobs]
    batch_id = service.submit_batch(session, store, settings, principal, body.batch_name, items)
    batch = service.batch_view(session, principal, batch_id, full=True)
    return Success(data={"batch_id": batch_id, "batch": batch})


@router.get("/batch/{batch_id}", response_model=Success)
@raises(BatchNotFound)
def get_batch(
    batch_id: Annotated[str, Path(max_length=64)], principal: PrincipalDep, session: SessionDep
) -> Success:
    """The batch's status, counts and each job's status."""
    return Success(data=service.batch_view(session, principal, batch_id))


@router.post("/templates", response_model=Success)
@raises(InvalidField)
def save_template(body: TemplateSave, principal: PrincipalDep, session: SessionDep) -> Success:
    """Create or replace a named transformer template (Jinja2, sandboxed) of the workspace."""
    tpl = service.save_template(session, principal, body.name, body.source, body.output_format)
    return Success(data=service.template_view(tpl))


@router.get("/templates", response_model=Success)
def list_templates(principal: PrincipalDep, session: SessionDep) -> Success:
    return Success(
        data=[service.template_view(t) for t in service.list_templates(session, principal)]
    )


@router.get("/templates/{name}", response_model=Success)
@raises(TemplateNotFound)
def get_template(
    name: Annotated[str, Path(max_length=64)], principal: PrincipalDep, session: SessionDep
) -> Success:
    return Success(data=service.template_view(service.get_template(session, principal, name)))


@router.get("/{job_id}", response_model=Success)
def get_job(job_id: JobId, principal: PrincipalDep, session: SessionDep) -> Success:
    """Status, progress, results and logs of one job."""
    job = service.get_job(session, principal, job_id)
    return Success(data=service.job_view(session, job))


@router.get(
    "/{job_id}/download-archive",
    response_class=StreamingResponse,
    responses=binary("application/zip", description="The job's results as a zip"),
)
@raises(ArchiveNotFound)
def download_archive(
    job_id: JobId, principal: PrincipalDep, session: SessionDep, store: ContentDep
) -> StreamingResponse:
    """The job's result directory as a zip (the same bytes every time)."""
    job = service.get_job(session, principal, job_id)
    archive = service.archive(store, job)
    headers = {
        "Content-Disposition": f'attachment; filename="job_{job.id}.zip"',
        "Content-Length": str(archive.content_length),
        "ETag": f'"{job.result_cid}.zip"',
    }
    return StreamingResponse(
        iterate_in_threadpool(iter(archive)), media_type="application/zip", headers=headers
    )
