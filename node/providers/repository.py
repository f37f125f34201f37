"""Every SQL query of the provider domain: registry lookups and the claim query."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, bindparam, delete, func, select, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.attributes import set_committed_value

from marketplace.jobs.states import ACTIVE, JobStatus
from node.jobs.repository import batch_has_room, claimable_jobs
from node.models.jobs import Job
from node.models.providers import Provider, ProviderAdmission


def provider_by_address(session: Session, address: str) -> Provider | None:
    return session.scalars(select(Provider).where(Provider.address == address)).first()


def _seen(which: ColumnElement[bool]) -> Any:
    """UPDATE ... RETURNING of the providers `which` selects, their `last_seen_at` set to
    `:seen_at`."""
    return (
        update(Provider)
        .where(which)
        .values(last_seen_at=bindparam("seen_at"))
        .returning(Provider)
        .execution_options(synchronize_session=False, populate_existing=True)
    )


# The statements every claim runs are built once, their values bound per call: building
# them (and deriving their cache keys) was a third of a claim's CPU (issue 12's profile of
# an in-process claim loop).
_SEEN_PROVIDER = _seen(Provider.address == bindparam("provider_address"))
# The providers of a batch of claims (`node.providers.claims`) in one statement, where each
# attempt took its own (a fifth of a batched claim's CPU under py-spy).
_SEEN_PROVIDERS = _seen(Provider.address.in_(bindparam("provider_addresses", expanding=True)))


def seen_provider(session: Session, address: str, now: dt.datetime) -> Provider | None:
    """The provider at `address`, its `last_seen_at` set to `now` in the same statement."""
    values = {"provider_address": address, "seen_at": now}
    return session.scalars(_SEEN_PROVIDER, values).first()


def seen_providers(
    session: Session, addresses: Collection[str], now: dt.datetime
) -> dict[str, Provider]:
    """The providers at `addresses` by address (none for an address that is no provider),
    each one's `last_seen_at` set to `now` in one statement."""
    if not addresses:
        return {}
    values = {"provider_addresses": sorted(addresses), "seen_at": now}
    return {p.address: p for p in session.scalars(_SEEN_PROVIDERS, values)}


def list_providers(session: Session) -> Sequence[Provider]:
    return session.scalars(select(Provider).order_by(Provider.id)).all()


def active_job_counts(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(Job.lease_holder, func.count())
        .where(Job.status.in_([s.value for s in ACTIVE]))
        .group_by(Job.lease_holder)
    ).all()
    return {holder: count for holder, count in rows if holder}


def _held_count(jobs: Any) -> Select[Any]:
    """The number of claimed or running jobs (among `jobs`: the table or an alias of it)
    that the provider at `:holder` holds."""
    return (
        select(func.count())
        .select_from(jobs)
        .where(jobs.lease_holder == bindparam("holder"), jobs.status.in_([s.value for s in ACTIVE]))
    )


_ACTIVE_JOBS_OF = _held_count(Job)


def active_jobs_of(session: Session, address: str) -> int:
    return session.scalar(_ACTIVE_JOBS_OF, {"holder": address}) or 0


def has_capacity() -> ColumnElement[bool]:
    """True while the provider at `:holder` holds fewer claimed or running jobs than
    `:max_active`: part of what a provider may be offered, so a claim learns it in its
    candidate query instead of a statement of its own (PostgreSQL runs it once per query,
    not per row: it does not depend on the job)."""
    # an alias: counted over every job the provider holds, not the candidate row
    active = _held_count(aliased(Job)).scalar_subquery()
    return active < bindparam("max_active", type_=Integer)


def claim_candidates(
    session: Session,
    job_types: Sequence[str],
    now: dt.datetime,
    scope: ColumnElement[bool],
    scope_params: Mapping[str, Any],
    limit: int,
    skip: Collection[int] = (),
) -> Sequence[Job]:
    """Up to `limit` claimable jobs of these types within `scope` (the jobs this provider
    may be offered, its parameters' values in `scope_params`), best first, leaving out the
    ids in `skip`. On PostgreSQL the rows are locked with SKIP LOCKED, so concurrent
    claimers are handed different candidates instead of queueing on one row; on SQLite
    (one writer) the compare-and-set in `take` settles it."""
    return claimable_jobs(
        session,
        now=now,
        limit=limit,
        job_types=job_types,
        scope=scope,
        scope_params=scope_params,
        skip=skip,
        lock=True,
    )


def chosen_candidate(
    session: Session,
    job_id: int,
    job_type: str,
    now: dt.datetime,
    scope: ColumnElement[bool],
    scope_params: Mapping[str, Any],
) -> Job | None:
    """Job `job_id` if it is claimable now within `scope` (the same rule and row lock as
    `claim_candidates`), else None."""
    found = claimable_jobs(
        session,
        now=now,
        limit=1,
        job_types=[job_type],
        scope=scope,
        scope_params=scope_params,
        only=job_id,
        lock=True,
    )
    return found[0] if found else None


def take(
    session: Session,
    job: Job,
    *,
    holder: str,
    lease_id: str,
    expires_at: dt.datetime,
    now: dt.datetime,
) -> bool:
    """Compare-and-set a pending job to claimed, taking the number of its `claimed` event
    (`event_seq`) in the same statement; False if someone else got it first, or if its
    batch already runs as many jobs as its concurrency allows. On success `job` holds the
    columns as written (RETURNING: no second read). The rest of `job` is as the claim's
    candidate query read it, which nobody can change meanwhile: PostgreSQL holds the row
    (FOR UPDATE), and SQLite's one writer is the claim, whose first statement wrote."""
    stmt = _TAKE_IN_BATCH if job.batch_id is not None else _TAKE
    values = {
        "job_id": job.id,
        "holder": holder,
        "new_lease_id": lease_id,
        "expires_at": expires_at,
        "now": now,
    }
    # Core, on the session's connection: the ORM's bulk UPDATE re-derived the statement's
    # cache key and loaded the whole row back into `job` on every claim (a fifth of the
    # claim's own work, py-spy on bench/dispatch.py)
    row = session.connection().execute(stmt, values).first()
    if row is None:
        return False
    for key, value in row._mapping.items():
        set_committed_value(job, key, value)
    return True


_JOBS = Job.__table__
# What a claim writes; the UPDATE returns the same columns, to set on the job
_TAKE_WRITES = {
    "status": JobStatus.CLAIMED.value,
    "attempt": _JOBS.c.attempt + 1,
    "lease_id": bindparam("new_lease_id"),
    "lease_holder": bindparam("holder"),
    "lease_expires_at": bindparam("expires_at"),
    "updated_at": bindparam("now"),
    "event_seq": _JOBS.c.event_seq + 1,
}
_TAKE = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job_id"), _JOBS.c.status == JobStatus.PENDING.value)
    .values(_TAKE_WRITES)
    .returning(*(_JOBS.c[name] for name in _TAKE_WRITES))
)
_TAKE_IN_BATCH = _TAKE.where(batch_has_room())


def active_leases(session: Session) -> Sequence[Job]:
    return session.scalars(
        select(Job).where(
            Job.status.in_([s.value for s in ACTIVE]), Job.lease_expires_at.is_not(None)
        )
    ).all()


def expired_leases(session: Session, now: dt.datetime, limit: int = 100) -> Sequence[Job]:
    stmt = (
        select(Job)
        .where(Job.status.in_([s.value for s in ACTIVE]), Job.lease_expires_at < now)
        .order_by(Job.lease_expires_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return session.scalars(stmt).all()


def replace_admissions(
    session: Session, provider_id: int, keys: Sequence[tuple[int, int]]
) -> list[ProviderAdmission]:
    """Make `keys` ((api_key_id, workspace_id) pairs) the provider's only admissions."""
    session.execute(
        delete(ProviderAdmission)
        .where(ProviderAdmission.provider_id == provider_id)
        .execution_options(synchronize_session=False)
    )
    rows = [
        ProviderAdmission(provider_id=provider_id, api_key_id=key_id, workspace_id=workspace_id)
        for key_id, workspace_id in keys
    ]
    session.add_all(rows)
    session.flush()
    return rows
