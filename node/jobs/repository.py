"""Every SQL query of the job domain.

List queries are one SELECT per page (plus one COUNT for page-numbered lists), never
load the event log (`raiseload` makes an accidental per-row load an error instead of an
N+1), and are served by the composite indexes declared on `Job`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, literal, or_, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session, raiseload, selectinload

from marketplace.jobs.states import OPEN_TO_PROVIDERS
from node.jobs.cursor import Cursor
from node.jobs.models import Job
from node.workspaces.models import WorkspaceMember

# Sort keys shared by both dialects; each is non-null, and ties are broken by id.
SORT_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "created_at": Job.created_at,
    "updated_at": Job.updated_at,
    "priority": Job.priority_rank,
    "status": Job.status,
    "type": Job.job_type,
}


@dataclass
class JobFilters:
    """Conditions a list applies on top of its scope; empty collections mean 'any'."""

    statuses: Collection[str] = field(default_factory=tuple)
    job_types: Collection[str] = field(default_factory=tuple)
    priorities: Collection[str] = field(default_factory=tuple)
    result_types: Collection[str] = field(default_factory=tuple)
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.statuses:
            out.append(Job.status.in_(sorted(self.statuses)))
        if self.job_types:
            out.append(Job.job_type.in_(sorted(self.job_types)))
        if self.priorities:
            out.append(Job.priority.in_(sorted(self.priorities)))
        if self.result_types:
            out.append(Job.result_type.in_(sorted(self.result_types)))
        if self.created_from is not None:
            out.append(Job.created_at >= self.created_from)
        if self.created_to is not None:
            out.append(Job.created_at <= self.created_to)
        return out


def member_workspace_ids(user_id: int) -> Select[Any]:
    """Subquery: the workspaces `user_id` belongs to (any role)."""
    return select(WorkspaceMember.workspace_id).where(WorkspaceMember.user_id == user_id)


def owned_by(
    user_id: int, address: str | None, scoped_workspace_id: int | None
) -> ColumnElement[bool]:
    """Jobs that 'belong to' a caller (seed 002): created by them, requested from their
    wallet, or in a workspace they are a member of. A workspace-scoped API key sees that
    workspace's jobs only."""
    if scoped_workspace_id is not None:
        return Job.workspace_id == scoped_workspace_id
    conds: list[ColumnElement[bool]] = [
        Job.created_by == user_id,
        Job.workspace_id.in_(member_workspace_ids(user_id)),
    ]
    if address:
        conds.append(Job.requester_address == address)
    return or_(*conds)


def in_workspaces(
    user_id: int, workspace_id: int | None, scoped_workspace_id: int | None
) -> ColumnElement[bool]:
    """Jobs of one workspace, or of every workspace the caller is a member of."""
    if scoped_workspace_id is not None:
        if workspace_id is not None and workspace_id != scoped_workspace_id:
            return false()
        return Job.workspace_id == scoped_workspace_id
    if workspace_id is not None:
        return Job.workspace_id == workspace_id
    return Job.workspace_id.in_(member_workspace_ids(user_id))


def get_job(session: Session, job_id: int, *, with_events: bool = False) -> Job | None:
    """One job by id; `with_events` loads its event log in the same round trip pair."""
    stmt = select(Job).where(Job.id == job_id)
    stmt = stmt.options(selectinload(Job.events) if with_events else raiseload(Job.events))
    return session.scalars(stmt).first()


def get_job_in_workspace(session: Session, job_id: int, workspace_id: int) -> Job | None:
    stmt = (
        select(Job)
        .where(Job.id == job_id, Job.workspace_id == workspace_id)
        .options(raiseload(Job.events))
    )
    return session.scalars(stmt).first()


def get_owned_job(
    session: Session,
    job_id: int,
    *,
    user_id: int,
    address: str | None,
    scoped_workspace_id: int | None,
) -> Job | None:
    stmt = (
        select(Job)
        .where(Job.id == job_id, owned_by(user_id, address, scoped_workspace_id))
        .options(selectinload(Job.events))
    )
    return session.scalars(stmt).first()


def _ordered(stmt: Select[Any], sort: str, order: str) -> Select[Any]:
    col = SORT_COLUMNS[sort]
    if order == "asc":
        return stmt.order_by(col.asc(), Job.id.asc())
    return stmt.order_by(col.desc(), Job.id.desc())


def page_of_jobs(
    session: Session,
    scope: ColumnElement[bool],
    filters: JobFilters,
    *,
    sort: str,
    order: str,
    page: int,
    limit: int,
) -> tuple[Sequence[Job], int]:
    """Page-numbered list (seed 001): the page's rows and the total matching count."""
    where = [scope, *filters.clauses()]
    total = session.scalar(select(func.count()).select_from(Job).where(*where)) or 0
    stmt = _ordered(select(Job).where(*where), sort, order)
    stmt = stmt.offset((page - 1) * limit).limit(limit).options(raiseload(Job.events))
    rows: Sequence[Job] = session.scalars(stmt).all()
    return rows, total


def keyset_jobs(
    session: Session,
    scope: ColumnElement[bool],
    filters: JobFilters,
    *,
    sort: str,
    order: str,
    after: Cursor | None,
    limit: int,
) -> Sequence[Job]:
    """Up to `limit` jobs strictly after `after` in (sort key, id) order (seed 002).

    The row-value comparison `(key, id) < (:v, :id)` is what lets PostgreSQL and SQLite
    seek straight into the (key, id) order instead of counting past skipped rows.
    """
    col = SORT_COLUMNS[sort]
    stmt: Select[Any] = select(Job).where(scope, *filters.clauses())
    if after is not None:
        key = tuple_(col, Job.id)
        bound = tuple_(
            _typed_literal(col, after.value),
            _typed_literal(Job.id, after.id),
        )
        stmt = stmt.where(key > bound if order == "asc" else key < bound)
    stmt = _ordered(stmt, sort, order).limit(limit).options(raiseload(Job.events))
    return session.scalars(stmt).all()


def _typed_literal(col: InstrumentedAttribute[Any], value: object) -> ColumnElement[Any]:
    return literal(value, type_=col.type)


def claimable_clause(now: dt.datetime) -> ColumnElement[bool]:
    """The predicate of a job a provider may claim now: open to providers, due, and not
    past its deadline.

    A job with `scheduled_at` in the future stays invisible to providers until then.
    """
    return and_(
        Job.status.in_([s.value for s in OPEN_TO_PROVIDERS]),
        or_(Job.scheduled_at.is_(None), Job.scheduled_at <= now),
        or_(Job.deadline_at.is_(None), Job.deadline_at > now),
    )


def claimable_jobs(
    session: Session,
    *,
    now: dt.datetime,
    limit: int = 10,
    job_types: Collection[str] | None = None,
    lock: bool = False,
) -> Sequence[Job]:
    """Jobs a provider may claim at `now`, most urgent first, then oldest.

    With `lock=True` the rows are locked `FOR UPDATE SKIP LOCKED` on PostgreSQL, so
    several node replicas claiming at once never hand out the same job (SQLite, a single
    writer, ignores the clause).
    """
    stmt = select(Job).where(claimable_clause(now))
    if job_types:
        stmt = stmt.where(Job.job_type.in_(sorted(job_types)))
    stmt = (
        stmt.order_by(Job.priority_rank.desc(), Job.created_at.asc(), Job.id.asc())
        .limit(limit)
        .options(raiseload(Job.events))
    )
    if lock:
        stmt = stmt.with_for_update(skip_locked=True)
    return session.scalars(stmt).all()
