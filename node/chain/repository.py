"""Every SQL query of the chain domain."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from node.chain.models import ChainCursor, ChainEvent, ChainJobKey, ChainOutbox


def cursor(session: Session, name: str) -> ChainCursor | None:
    return session.get(ChainCursor, name)


def event_exists(session: Session, chain_id: int, tx_hash: str, log_index: int) -> bool:
    stmt = select(ChainEvent.id).where(
        ChainEvent.chain_id == chain_id,
        ChainEvent.tx_hash == tx_hash,
        ChainEvent.log_index == log_index,
    )
    return session.execute(stmt).first() is not None


def job_id_for_key(session: Session, job_key: str) -> int | None:
    row = session.get(ChainJobKey, job_key)
    return row.job_id if row else None


def key_for_job(session: Session, job_id: int) -> str | None:
    stmt = select(ChainJobKey.job_key).where(ChainJobKey.job_id == job_id)
    return session.execute(stmt).scalar_one_or_none()


def settlements(
    session: Session,
    *,
    provider: str | None = None,
    requester: str | None = None,
    job_id: int | None = None,
    limit: int = 100,
) -> list[ChainEvent]:
    stmt = select(ChainEvent).where(ChainEvent.event == "JobSettled")
    if provider:
        stmt = stmt.where(ChainEvent.provider == provider)
    if requester:
        stmt = stmt.where(ChainEvent.requester == requester)
    if job_id is not None:
        stmt = stmt.where(ChainEvent.job_id == job_id)
    stmt = stmt.order_by(ChainEvent.block_number.desc(), ChainEvent.log_index.desc()).limit(limit)
    return list(session.execute(stmt).scalars())


def withdrawals(session: Session, account: str) -> list[ChainEvent]:
    stmt = (
        select(ChainEvent)
        .where(ChainEvent.event == "Withdrawn", or_(ChainEvent.provider == account))
        .order_by(ChainEvent.block_number)
    )
    return list(session.execute(stmt).scalars())


def outbox_open(session: Session) -> list[ChainOutbox]:
    stmt = (
        select(ChainOutbox)
        .where(ChainOutbox.status.in_(("pending", "signed")))
        .order_by(ChainOutbox.id)
    )
    return list(session.execute(stmt).scalars())


def outbox_by_dedupe(session: Session, dedupe_key: str) -> ChainOutbox | None:
    stmt = select(ChainOutbox).where(ChainOutbox.dedupe_key == dedupe_key)
    return session.execute(stmt).scalar_one_or_none()
