"""Seed 002 dialect, the canonical job API: `/v1/jobs`.

Envelopes (seed 002's response schemas list three unnamed fields; these are ours):
- `GET /v1/jobs` -> `{"success": true, "data": [job...], "pagination": {"limit",
  "nextCursor", "hasMore"}}`;
- `POST /v1/jobs` (201) and `GET /v1/jobs/{jobId}` -> `{"success": true, "data": job,
  "message": "..."}`, where the single job also carries its `events`;
- errors `{"error": {"code", "message", "details"?}}` (`node.errors`); every bad query
  parameter or body is 400, as the seed documents (`INVALID_QUERY`, `INVALID_BODY`,
  `INVALID_CURSOR`), a missing job 404 `JOB_NOT_FOUND`.

Field names are camelCase throughout (`workspaceId`, `nextCursor`); statuses are the
canonical words (`marketplace.jobs.states`); timestamps are ISO-8601 UTC with
milliseconds; `reward` is an exact decimal ETH string.

Decisions where the seed is silent:
- `limit` is required, as the seed says: leaving it out is a 400 naming the field.
- "The authenticated user's jobs": the jobs the caller may read (`node.authz.policy`):
  those of the workspaces it belongs to (so one job is reachable here and through seed
  001), and its own jobs without a workspace (seed 000 uploads requested from its
  wallet). A workspace-scoped API key sees that workspace's jobs only, and a provider key
  none. A job the caller may not read is 404, never 403, so ids of others' jobs leak
  nothing; one it may read but not act on (a viewer cancelling) is 403.
- A job created without `workspaceId` lands in the caller's personal workspace, made on
  first use and listed by `GET /workspaces`. An API key must name its own workspace.
- `sort` is one of createdAt (default), updatedAt, priority, status, type (snake_case
  accepted too), `order` desc (default) or asc. Pagination is keyset on (sort key, id):
  the cursor is bound to its sort and order (reusing it with another is 400).
- `from`/`to` are inclusive bounds on the creation time, in Unix milliseconds;
  `from` > `to` is 400.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from sqlalchemy.orm import Session

from marketplace.errors import (
    BadQuery,
    InvalidTransition,
    WorkspaceNotFound,
)
from marketplace.jobs.states import JobStatus
from node.auth.deps import PrincipalDep, known_principal
from node.auth.principal import Principal
from node.authz.policy import Action
from node.deps import SessionDep, in_thread, model_response, plain_json_body
from node.jobs import service
from node.jobs.creates import CreatesDep, creates_of
from node.jobs.funding import Funding, FundingDep
from node.jobs.repository import JobFilters
from node.jobs.schemas import (
    CursorPagination,
    JobCreateV1,
    JobDetailV1,
    JobEnvelopeV1,
    JobListV1,
    JobV1,
)
from node.openapi import raises
from node.readcache import answer_version, keep_answer

router = APIRouter(prefix="/v1/jobs", tags=["jobs (seed 002: canonical /v1)"])

SORT_FIELDS = {
    "createdAt": "created_at",
    "created_at": "created_at",
    "updatedAt": "updated_at",
    "updated_at": "updated_at",
    "priority": "priority",
    "status": "status",
    "type": "type",
}
SortParam = Literal[
    "createdAt", "created_at", "updatedAt", "updated_at", "priority", "status", "type"
]
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def _from_ms(ms: int | None) -> dt.datetime | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


@router.get("", response_model=JobListV1)
async def list_jobs(
    principal: PrincipalDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Number of items to return (1-100)")],
    cursor: Annotated[
        str | None,
        Query(max_length=512, description="The exact base64 token `nextCursor` of a page"),
    ] = None,
    type: Annotated[list[str] | None, Query(max_length=64, description="Job type")] = None,
    status_: Annotated[list[JobStatus] | None, Query(alias="status")] = None,
    result_type: Annotated[list[str] | None, Query(alias="resultType", max_length=64)] = None,
    from_: Annotated[
        int | None, Query(alias="from", ge=0, le=MAX_MS, description="Created at or after (ms)")
    ] = None,
    to: Annotated[
        int | None, Query(ge=0, le=MAX_MS, description="Created at or before (Unix ms)")
    ] = None,
    sort: SortParam = "createdAt",
    order: Literal["asc", "desc"] = "desc",
    *,
    request: Request,
) -> JobListV1:
    """All jobs of the authenticated user, filtered, sorted, cursor-paginated."""
    if from_ is not None and to is not None and from_ > to:
        raise BadQuery("`from` must not be after `to`", details={"from": from_, "to": to})
    filters = JobFilters(
        statuses=tuple(s.value for s in status_ or ()),
        job_types=tuple(type or ()),
        result_types=tuple(result_type or ()),
        created_from=_from_ms(from_),
        created_to=_from_ms(to),
    )
    page_args = (principal, filters, SORT_FIELDS[sort], order, cursor, limit)
    version = await answer_version(request)  # polled: answered again until the next commit
    page = await in_thread(session, _job_page, session, *page_args, read_only=True)
    keep_answer(request, version)
    return page


def _job_page(
    session: Session,
    principal: Principal,
    filters: JobFilters,
    sort: str,
    order: str,
    cursor: str | None,
    limit: int,
) -> JobListV1:
    jobs, next_cursor = service.list_owned_jobs(
        session, principal, filters, sort=sort, order=order, cursor=cursor, limit=limit
    )
    return JobListV1(
        data=[JobV1.from_job(j) for j in jobs],
        pagination=CursorPagination(
            limit=limit, next_cursor=next_cursor, has_more=next_cursor is not None
        ),
    )


@router.post("", response_model=JobEnvelopeV1, status_code=status.HTTP_201_CREATED)
@raises(WorkspaceNotFound)
async def create_job(body: JobCreateV1, principal: PrincipalDep, creates: CreatesDep) -> Response:
    """Create a job in one of the caller's workspaces, by default its personal one."""
    created = await creates.create(principal, body)  # with the creates of the moment
    return model_response(created, status.HTTP_201_CREATED)


async def create_job_at_once(request: Request) -> Response | None:
    """`create_job` in front of routing (`node.app.FAST_PATHS`), for a request that holds
    no surprise: a JSON body that is a valid create, from a caller known without the
    database (`known_principal`: a valid access token of a cached user). None for any
    other request: the route decides it, and its refusals are the errors (400 for the
    body, 401 or 429 for the credential). Both answer alike (`model_response`)."""
    principal = known_principal(request)
    if principal is None:
        return None
    body = await plain_json_body(request, JobCreateV1)
    if body is None:
        return None
    request.state.principal = principal  # the request's log line names the caller
    created = await creates_of(request).create(principal, body)
    return model_response(created, status.HTTP_201_CREATED)


@router.get("/{jobId}", response_model=JobEnvelopeV1)
async def get_job(
    job_id: Annotated[str, Path(alias="jobId", description="e.g. job_5")],
    principal: PrincipalDep,
    session: SessionDep,
    funding: FundingDep,
    request: Request,
) -> JobEnvelopeV1:
    """One of the caller's jobs, with its event log, its `funding` call while it awaits
    its escrow deposit and its `escrow` as seen on chain; 404 for anyone else's."""
    version = await answer_version(request)  # polled: answered again until the next commit
    envelope = await in_thread(
        session, _job_detail, session, principal, job_id, funding, read_only=True
    )
    if envelope.data.status is not JobStatus.AWAITING_FUNDING:  # its funding call: chain
        keep_answer(request, version)
    return envelope


def _job_detail(
    session: Session, principal: Principal, job_id: str, funding: Funding
) -> JobEnvelopeV1:
    job, events = service.get_owned_job_detail(session, principal, job_id)
    detail = JobDetailV1.from_job(job, events)
    if detail.status is JobStatus.AWAITING_FUNDING:
        # Its funding call may write (the escrow row of the job's next deposit, made on
        # first ask, in a savepoint): in a transaction, not in the reads' autocommit
        # (`read_only`), where PostgreSQL refuses a savepoint. Ending the reads' turn
        # lets the next statement begin one.
        session.commit()
    detail.funding = funding.funding_call(session, job)
    detail.escrow = funding.escrow_view(session, job)
    return JobEnvelopeV1(data=detail, message="Job retrieved successfully")


@router.post("/{jobId}/cancel", response_model=JobEnvelopeV1)
@raises(InvalidTransition)
def cancel_job(
    job_id: Annotated[str, Path(alias="jobId", description="e.g. job_5")],
    principal: PrincipalDep,
    session: SessionDep,
) -> JobEnvelopeV1:
    """Cancel one of the caller's jobs. A running job stops at its provider's next epoch
    boundary; a funded job's deposit comes back to the requester's wallet through the
    node (it releases the provider's binding and refunds the escrow)."""
    job = service.get_owned_job(session, principal, job_id, Action.CANCEL_JOB)
    service.cancel_job(session, job, reason="Cancelled by the requester")
    return JobEnvelopeV1(data=JobDetailV1.from_job(job), message="Job cancelled")
