"""Seed 001 dialect: workspace-scoped jobs at `/workspace/{workspace_id}/jobs...`, and the
deprecated `GET /jobs` that lists the caller's jobs across workspaces.

Shape of this dialect (as seed 001 documents it):
- collections `{"data": [...], "pagination": {page, limit, total, total_pages}}`, single
  resources bare, errors `{"detail": "..."}` (plus a stable `code`);
- ids `job_<n>` (the canonical integer id, `marketplace.jobs.ids`); a malformed id is a
  job that does not exist: 404 "Job not found in specified workspace", exactly as a job of
  another workspace;
- status words pending/running/success/failed/cancelled (mapping and filter semantics in
  `marketplace.jobs.dialects`);
- `metadata` is stored as the job's canonical `spec` (seed 002's `payload`);
- `result` shows the progress fields while they are set, merged with the stored result
  (the seed's list and PATCH examples show them inside `result`).

Decisions where the seed is silent:
- `workspace_id` in a create body that differs from the URL: 400 `WORKSPACE_MISMATCH`
  (the request names two targets; not a shape error, so not 422). Missing: 422.
- Who may do what is `node.authz.policy` (viewers read; creating, patching, cancelling
  and retrying need owner or member; a provider key none of these): 403 otherwise.
  Role checks run before the body is validated, so a stranger learns nothing from 422s.
- PATCH to the status the job already shows (e.g. `running` with a progress update) is
  not a transition and logs nothing; any other change goes through the transition table
  (409 `INVALID_TRANSITION` when illegal, e.g. `success` straight from `pending`).
- `cancel` merges `{"cancelled_reason": "Cancelled via API"}` into the result; `retry`
  replaces the result with `{"retry_reason", "previous_attempts"}` (the old one stays in
  the event log), clears start/finish times, and answers 409 `RETRY_LIMIT_REACHED` once
  `retry_count` has reached `max_retries`.
- Legacy `GET /jobs` answers the same envelope with `Deprecation: true` and a `Link` to
  its successor (`rel="successor-version"` for `?workspace_id=`, else the docs).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from marketplace.errors import (
    Forbidden,
    InvalidTransition,
    RetryLimitReached,
    WorkspaceMismatch,
    WorkspaceNotFound,
)
from marketplace.jobs.dialects import seed001_filter, seed001_word
from node.auth.deps import PrincipalDep
from node.auth.principal import Principal
from node.authz.policy import Action, authorize
from node.deps import SessionDep, in_thread
from node.jobs import service
from node.jobs.repository import JobFilters
from node.jobs.schemas import (
    Job001,
    JobCreate001,
    JobPage001,
    JobResult001,
    JobStatus001,
    JobUpdate001,
    PagePagination,
    Priority,
)
from node.openapi import raises
from node.readcache import answer_version, keep_answer

router = APIRouter(tags=["jobs (seed 001: workspace-scoped)"])

StatusWord = Literal[
    "pending",
    "running",
    "success",
    "failed",
    "cancelled",
    "awaiting_funding",
    "claimed",
    "submitted",
    "completed",
    "expired",
    "disputed",
]
SortField = Literal["created_at", "updated_at", "priority", "status"]
WorkspaceIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="Workspace id")]
JobIdPath = Annotated[str, Path(description="Job id, e.g. `job_5` (or `5`)")]


def _workspace_for(action: Action) -> Callable[..., int]:
    """A dependency: the path's workspace id, once the caller may do `action` in it."""

    async def dependency(
        workspace_id: WorkspaceIdPath, principal: PrincipalDep, session: SessionDep
    ) -> int:
        await run_in_threadpool(authorize, session, principal, workspace_id, action)
        return workspace_id

    return dependency


ReadableWorkspace = Annotated[int, Depends(_workspace_for(Action.READ_JOB), scope="function")]
CreatableWorkspace = Annotated[int, Depends(_workspace_for(Action.CREATE_JOB), scope="function")]
UpdatableWorkspace = Annotated[int, Depends(_workspace_for(Action.UPDATE_JOB), scope="function")]
CancellableWorkspace = Annotated[int, Depends(_workspace_for(Action.CANCEL_JOB), scope="function")]
RetryableWorkspace = Annotated[int, Depends(_workspace_for(Action.RETRY_JOB), scope="function")]


class ListQuery:
    """Filters, sorting and page pagination shared by the workspace and legacy lists."""

    def __init__(
        self,
        status: Annotated[list[StatusWord] | None, Query(description="OR-ed if repeated")] = None,
        job_type: Annotated[list[str] | None, Query(max_length=64)] = None,
        priority: Annotated[list[Priority] | None, Query()] = None,
        sort: SortField = "created_at",
        order: Literal["asc", "desc"] = "desc",
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
    ) -> None:
        self.filters = JobFilters(
            statuses=seed001_filter(status or ()),
            job_types=tuple(job_type or ()),
            priorities=tuple(priority or ()),
        )
        self.sort, self.order, self.page, self.limit = sort, order, page, limit

    def envelope(self, jobs: list, total: int) -> JobPage001:
        return JobPage001(
            data=[Job001.from_job(j) for j in jobs],
            pagination=PagePagination(
                page=self.page,
                limit=self.limit,
                total=total,
                total_pages=math.ceil(total / self.limit),
            ),
        )


async def _list_query(**params: Any) -> ListQuery:
    return ListQuery(**params)


# An async factory with ListQuery's parameters: FastAPI runs a class dependency in a
# worker thread (one more hop per request); this costs none.
_list_query.__signature__ = inspect.signature(ListQuery)  # type: ignore[attr-defined]
ListQueryDep = Annotated[ListQuery, Depends(_list_query)]


@router.get("/workspace/{workspace_id}/jobs", response_model=JobPage001)
@raises(Forbidden, WorkspaceNotFound)
async def list_jobs(
    workspace_id: WorkspaceIdPath,
    q: ListQueryDep,
    principal: PrincipalDep,
    session: SessionDep,
    request: Request,
) -> JobPage001:
    """List jobs in the workspace with filters, sorting and page pagination."""
    # the caller's role there is checked with the page's statements, in the same worker
    # thread hop (`readable_in_workspace`), not by a dependency of its own
    version = await answer_version(request)  # polled: answered again until the next commit
    page = await in_thread(session, _job_page, session, principal, workspace_id, q, read_only=True)
    keep_answer(request, version)
    return page


def _job_page(
    session: Session, principal: Principal, workspace_id: int, q: ListQuery
) -> JobPage001:
    jobs, total = service.list_workspace_jobs(
        session,
        principal,
        q.filters,
        workspace_id=workspace_id,
        sort=q.sort,
        order=q.order,
        page=q.page,
        limit=q.limit,
    )
    return q.envelope(jobs, total)


@router.post(
    "/workspace/{workspace_id}/jobs",
    response_model=Job001,
    status_code=status.HTTP_201_CREATED,
)
@raises(WorkspaceMismatch)
def create_job(
    workspace_id: CreatableWorkspace,
    body: JobCreate001,
    principal: PrincipalDep,
    session: SessionDep,
) -> Job001:
    """Create a job in the workspace (`workspace_id` in the body must match the URL)."""
    if body.workspace_id != workspace_id:
        raise WorkspaceMismatch(
            f"workspace_id in body ({body.workspace_id}) does not match URL ({workspace_id})"
        )
    job = service.create_job(
        session,
        job_type=body.job_type,
        spec=body.metadata,
        created_by=principal.user_id,
        workspace_id=workspace_id,
        requester_address=principal.address,
        priority=body.priority,
        max_retries=body.max_retries,
        estimated_duration_seconds=body.estimated_duration,
        scheduled_at=body.scheduled_at,
    )
    return Job001.from_job(job)


@router.get("/workspace/{workspace_id}/jobs/{job_id}", response_model=Job001)
def get_job(workspace_id: ReadableWorkspace, job_id: JobIdPath, session: SessionDep) -> Job001:
    """Job details."""
    return Job001.from_job(service.get_workspace_job(session, workspace_id, job_id))


@router.get("/workspace/{workspace_id}/jobs/{job_id}/status", response_model=JobStatus001)
def get_job_status(
    workspace_id: ReadableWorkspace, job_id: JobIdPath, session: SessionDep
) -> JobStatus001:
    """Current status and progress."""
    return JobStatus001.from_job(service.get_workspace_job(session, workspace_id, job_id))


@router.get("/workspace/{workspace_id}/jobs/{job_id}/result", response_model=JobResult001)
def get_job_result(
    workspace_id: ReadableWorkspace, job_id: JobIdPath, session: SessionDep
) -> JobResult001:
    """Result data (null until the job has produced some)."""
    return JobResult001.from_job(service.get_workspace_job(session, workspace_id, job_id))


@router.patch("/workspace/{workspace_id}/jobs/{job_id}", response_model=Job001)
@raises(InvalidTransition)
def update_job(
    workspace_id: UpdatableWorkspace,
    job_id: JobIdPath,
    body: JobUpdate001,
    session: SessionDep,
) -> Job001:
    """Update status, progress or result (merged into the stored result)."""
    job = service.get_workspace_job(session, workspace_id, job_id)
    target = body.target_status
    if target is not None and seed001_word(target) == seed001_word(job.status):
        target = None  # already shows that word: an update, not a transition
    changes = body.model_dump(include=body.model_fields_set - {"status"})
    return Job001.from_job(service.update_job(session, job, changes, target=target))


@router.post("/workspace/{workspace_id}/jobs/{job_id}/cancel", response_model=Job001)
@raises(InvalidTransition)
def cancel_job(
    workspace_id: CancellableWorkspace, job_id: JobIdPath, session: SessionDep
) -> Job001:
    """Cancel a pending or running job."""
    job = service.get_workspace_job(session, workspace_id, job_id)
    return Job001.from_job(service.cancel_job(session, job))


@router.post("/workspace/{workspace_id}/jobs/{job_id}/retry", response_model=Job001)
@raises(InvalidTransition, RetryLimitReached)
def retry_job(workspace_id: RetryableWorkspace, job_id: JobIdPath, session: SessionDep) -> Job001:
    """Retry a failed or cancelled job (up to `max_retries` times)."""
    job = service.get_workspace_job(session, workspace_id, job_id)
    return Job001.from_job(service.retry_job(session, job))


@router.get("/jobs", response_model=JobPage001, deprecated=True)
@raises(WorkspaceNotFound)
def list_jobs_legacy(
    response: Response,
    q: ListQueryDep,
    principal: PrincipalDep,
    session: SessionDep,
    workspace_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> JobPage001:
    """Deprecated: jobs across all the caller's workspaces (or one, with `workspace_id`).
    Use `/workspace/{workspace_id}/jobs`."""
    if workspace_id is not None:
        authorize(session, principal, workspace_id, Action.READ_JOB)
    response.headers["Deprecation"] = "true"
    response.headers["Link"] = (
        f'</workspace/{workspace_id}/jobs>; rel="successor-version"'
        if workspace_id is not None
        else '</docs>; rel="deprecation"'
    )
    jobs, total = service.list_workspace_jobs(
        session,
        principal,
        q.filters,
        workspace_id=workspace_id,
        sort=q.sort,
        order=q.order,
        page=q.page,
        limit=q.limit,
    )
    return q.envelope(jobs, total)
