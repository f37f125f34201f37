"""Every SQL query of the job domain.

List queries are one SELECT per page (plus one COUNT for page-numbered lists), never
load the event log (`raiseload` makes an accidental per-row load an error instead of an
N+1), and are served by the composite indexes declared on `Job`.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
    tuple_,
    union,
)
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased, raiseload, selectinload

from marketplace.jobs.states import ACTIVE, OPEN_TO_PROVIDERS
from node.jobs.cursor import Cursor
from node.models.jobs import Job, JobBatch, JobEvent

# Sort keys shared by both dialects; each is non-null, and ties are broken by id.
SORT_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "created_at": Job.created_at,
    "updated_at": Job.updated_at,
    "priority": Job.priority_rank,
    "status": Job.status,
    "type": Job.job_type,
}


# The list filters that keep rows whose column is one of a set of values.
_SET_FILTERS: dict[str, InstrumentedAttribute[Any]] = {
    "statuses": Job.status,
    "job_types": Job.job_type,
    "priorities": Job.priority,
    "result_types": Job.result_type,
    "pools": Job.pool,
}


@functools.cache
def _filter_clauses(names: tuple[str, ...]) -> tuple[ColumnElement[bool], ...]:
    """The clauses of the named filters, built once, each value a parameter `filter_<name>`
    (`JobFilters.parametrized`)."""
    out: list[ColumnElement[bool]] = []
    for name in names:
        if name in _SET_FILTERS:
            out.append(_SET_FILTERS[name].in_(bindparam(f"filter_{name}", expanding=True)))
        elif name == "created_from":
            out.append(Job.created_at >= bindparam("filter_created_from"))
        else:
            out.append(Job.created_at <= bindparam("filter_created_to"))
    return tuple(out)


@dataclass
class JobFilters:
    """Conditions a list applies on top of its scope; empty collections mean 'any'."""

    statuses: Collection[str] = field(default_factory=tuple)
    job_types: Collection[str] = field(default_factory=tuple)
    priorities: Collection[str] = field(default_factory=tuple)
    result_types: Collection[str] = field(default_factory=tuple)
    pools: Collection[str] = field(default_factory=tuple)
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None

    def parametrized(self) -> tuple[tuple[ColumnElement[bool], ...], dict[str, Any]]:
        """The clauses of the filters that are set, built once for each combination, and
        the values of their parameters."""
        values: dict[str, Any] = {}
        for name in _SET_FILTERS:
            chosen = getattr(self, name)
            if chosen:
                values[name] = sorted(chosen)
        for name in ("created_from", "created_to"):
            if getattr(self, name) is not None:
                values[name] = getattr(self, name)
        clauses = _filter_clauses(tuple(values))
        return clauses, {f"filter_{name}": value for name, value in values.items()}

    def clauses(self) -> list[ColumnElement[bool]]:
        """The filters' clauses with their values in them, for a statement built per
        request."""
        clauses, params = self.parametrized()
        return [clause.params(params) for clause in clauses]


# The hot reads' statements are built once, their ids bound per call: SQLAlchemy then
# reuses the statement's cache key instead of building the statement and deriving its key
# on every request (issue 12's profile: half of `get_job`'s 265 us on SQLite).
_JOB_BY_ID = select(Job).where(Job.id == bindparam("job_id"))
_JOB_ONLY = _JOB_BY_ID.options(raiseload(Job.events))
_JOB_WITH_EVENTS = _JOB_BY_ID.options(selectinload(Job.events))


def get_job(session: Session, job_id: int, *, with_events: bool = False) -> Job | None:
    """One job by id; `with_events` loads its event log in the same round trip pair."""
    stmt = _JOB_WITH_EVENTS if with_events else _JOB_ONLY
    return session.scalars(stmt, {"job_id": job_id}).first()


_JOBS = Job.__table__
_EVENTS = JobEvent.__table__
_JOB_ROW = select(_JOBS).where(_JOBS.c.id == bindparam("job_id"))


def job_row(session: Session, job_id: int) -> Row[Any] | None:
    """One job by id as a row with the job's attribute names, for a read that only reads
    it: a third of loading the ORM `Job` (issue 12's profile: the ORM select was 0.8 of a
    by-id read's 1.8 ms of worker-thread time on SQLite)."""
    return session.execute(_JOB_ROW, {"job_id": job_id}).first()


_EVENTS_OF = select(_EVENTS).where(_EVENTS.c.job_id == bindparam("job_id")).order_by(_EVENTS.c.id)


def events_of(session: Session, job_id: int) -> Sequence[Row[Any]]:
    """A job's event log in order, as rows with the event's attribute names (what a read
    answers with). Half the cost of loading `Job.events` (issue 12's profile: the ORM's
    select-in load took 280 of a by-id read's 740 microseconds on SQLite)."""
    return session.execute(_EVENTS_OF, {"job_id": job_id}).all()


def get_job_in_workspace(session: Session, job_id: int, workspace_id: int) -> Job | None:
    stmt = (
        select(Job)
        .where(Job.id == job_id, Job.workspace_id == workspace_id)
        .options(raiseload(Job.events))
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
) -> tuple[Sequence[Row[Any]], int]:
    """Page-numbered list (seed 001): the page's rows (with the job's attribute names, as
    `keyset_jobs`) and the total matching count."""
    where = [scope, *filters.clauses()]
    total = session.scalar(select(func.count()).select_from(Job).where(*where)) or 0
    stmt = _ordered(select(_JOBS).where(*where), sort, order)
    return session.execute(stmt.offset((page - 1) * limit).limit(limit)).all(), total


def keyset_jobs(
    session: Session,
    branches: tuple[ColumnElement[bool], ...],
    scope_params: Mapping[str, Any],
    filters: JobFilters,
    *,
    sort: str,
    order: str,
    after: Cursor | None,
    limit: int,
) -> Sequence[Row[Any]]:
    """Up to `limit` jobs strictly after `after` in (sort key, id) order (seed 002), out
    of the jobs matching any of `branches` (the caller's scope with its parameters'
    values, `node.authz.policy.readable_scope`). Rows with the job's attribute names, not
    ORM objects: a page is only read, and building 50 `Job`s took a third of a list
    request (issue 12's profile). The statement is built once for each shape of scope,
    filters, order and cursor (`_keyset_statement`); its values are bound per request."""
    where, values = filters.parametrized()
    values.update(scope_params, limit=limit)
    if after is not None:
        values.update(after_key=after.value, after_id=after.id)
    stmt = _keyset_statement(branches, where, sort, order, after is not None)
    return session.execute(stmt, values).all()


@functools.lru_cache(maxsize=512)
def _keyset_statement(
    branches: tuple[ColumnElement[bool], ...],
    filters: tuple[ColumnElement[bool], ...],
    sort: str,
    order: str,
    after: bool,
) -> Select[Any]:
    """`keyset_jobs`' statement, its values as parameters (`limit`, `after_key`,
    `after_id`, and those of its branches and filters).

    The row-value comparison `(key, id) < (:after_key, :after_id)` is what lets
    PostgreSQL and SQLite seek straight into the (key, id) order instead of counting past
    skipped rows. Several branches are read as one statement: each branch's first `limit`
    (key, id) pairs, an ordered seek on its own index, merged by UNION and cut to
    `limit`. An OR of the branches instead made both databases read and sort every
    readable row for each page."""
    col = SORT_COLUMNS[sort]
    where = list(filters)
    if after:
        key = tuple_(col, Job.id)
        bound = tuple_(
            bindparam("after_key", type_=col.type), bindparam("after_id", type_=Job.id.type)
        )
        where.append(key > bound if order == "asc" else key < bound)
    limit = bindparam("limit", type_=Integer)
    if len(branches) == 1:
        return _ordered(select(_JOBS).where(branches[0], *where), sort, order).limit(limit)
    seeks = [
        _ordered(select(Job.id.label("id"), col.label("k")).where(b, *where), sort, order)
        .limit(limit)
        .subquery()
        for b in branches
    ]
    merged = union(*(select(seek.c.id, seek.c.k) for seek in seeks)).subquery()
    asc = order == "asc"
    by = (merged.c.k.asc(), merged.c.id.asc()) if asc else (merged.c.k.desc(), merged.c.id.desc())
    top = select(merged.c.id, merged.c.k).order_by(*by).limit(limit).subquery()
    by_top = (top.c.k.asc(), top.c.id.asc()) if asc else (top.c.k.desc(), top.c.id.desc())
    return select(_JOBS).join(top, Job.id == top.c.id).order_by(*by_top)


def claimable_clause() -> ColumnElement[bool]:
    """The predicate of a job a provider may claim at `:now` (a bound parameter): open to
    providers, due, and not past its deadline.

    A job with `scheduled_at` in the future stays invisible to providers until then.
    """
    now = bindparam("now")
    return and_(
        Job.status.in_([s.value for s in OPEN_TO_PROVIDERS]),
        or_(Job.scheduled_at.is_(None), Job.scheduled_at <= now),
        or_(Job.deadline_at.is_(None), Job.deadline_at > now),
    )


def in_networks() -> ColumnElement[bool]:
    """Jobs a provider serving the networks `:networks` (a bound list) may take: a job of
    one of them, or of none."""
    return or_(Job.pool.is_(None), Job.pool.in_(bindparam("networks", expanding=True)))


@functools.cache
def batch_has_room() -> ColumnElement[bool]:
    """Jobs outside any batch, or whose batch has fewer claimed or running jobs than its
    concurrency. Part of the claim's compare-and-set (`take`), so on SQLite (one writer)
    it holds under concurrent claims; PostgreSQL also locks the batch (`lock_batch`).

    Built once: it takes no parameters, and adapting the aliased subquery was a tenth of
    the node's CPU per claim when built for every claim (a profile of `bench/dispatch.py`)."""
    other = aliased(Job)
    running = (
        select(func.count())
        .select_from(other)
        .where(other.batch_id == Job.batch_id, other.status.in_([s.value for s in ACTIVE]))
        .scalar_subquery()
    )
    limit = select(JobBatch.concurrency).where(JobBatch.id == Job.batch_id).scalar_subquery()
    return or_(Job.batch_id.is_(None), running < func.coalesce(limit, 2**31 - 1))


def lock_batch(session: Session, batch_id: str) -> None:
    """Hold the batch's row until commit (PostgreSQL): claimants of one batch take turns,
    so each one's `batch_has_room` sees the others' committed claims."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(JobBatch.id).where(JobBatch.id == batch_id).with_for_update())


def claimable_jobs(
    session: Session,
    *,
    now: dt.datetime,
    limit: int = 10,
    job_types: Collection[str] | None = None,
    scope: ColumnElement[bool] | None = None,
    scope_params: Mapping[str, Any] | None = None,
    skip: Collection[int] = (),
    only: int | None = None,
    lock: bool = False,
) -> Sequence[Job]:
    """Jobs a provider may claim at `now` (within `scope`: the jobs it may be offered, its
    parameters' values in `scope_params`), most urgent first, then oldest; leaving out the
    ids in `skip`, or only job `only`.

    With `lock=True` the rows are locked `FOR UPDATE SKIP LOCKED` on PostgreSQL, so
    several node replicas claiming at once never hand out the same job (SQLite, a single
    writer, ignores the clause).

    The statement is built once for each shape (`_claimable_statement`): every claim runs
    it, and building it was most of a claim's CPU after the database's own work (issue
    12's profile)."""
    values: dict[str, Any] = {**(scope_params or {}), "now": now, "limit": limit}
    if job_types:
        values["job_types"] = sorted(job_types)
    if skip:
        values["skip"] = sorted(skip)
    if only is not None:
        values["only"] = only
    stmt = _claimable_statement(scope, bool(job_types), bool(skip), only is not None, lock)
    return session.scalars(stmt, values).all()


@functools.lru_cache(maxsize=64)
def _claimable_statement(
    scope: ColumnElement[bool] | None, typed: bool, skipping: bool, one: bool, lock: bool
) -> Select[Any]:
    """`claimable_jobs`' statement, its values as parameters (`now`, `limit`,
    `job_types`, `skip`, `only`, and the scope's)."""
    stmt = select(Job).where(claimable_clause())
    if typed:
        stmt = stmt.where(Job.job_type.in_(bindparam("job_types", expanding=True)))
    if scope is not None:
        stmt = stmt.where(scope)
    if skipping:
        stmt = stmt.where(Job.id.not_in(bindparam("skip", expanding=True)))
    if one:
        stmt = stmt.where(Job.id == bindparam("only"))
    stmt = (
        stmt.order_by(Job.priority_rank.desc(), Job.created_at.asc(), Job.id.asc())
        .limit(bindparam("limit", type_=Integer))
        .options(raiseload(Job.events))
    )
    if lock:
        stmt = stmt.with_for_update(skip_locked=True)
    return stmt


def jobs_using_cid(
    session: Session, cid: str, statuses: Collection[str], limit: int = 10
) -> Sequence[int]:
    """Ids of jobs in `statuses` whose dataset, metadata or result is `cid`."""
    stmt = (
        select(Job.id)
        .where(
            or_(Job.folder_cid == cid, Job.metadata_cid == cid, Job.result_cid == cid),
            Job.status.in_(sorted(statuses)),
        )
        .order_by(Job.id)
        .limit(limit)
    )
    return session.scalars(stmt).all()
