"""Tables of the chain domain: watcher cursor, applied chain events, escrows, outbox.

- `chain_cursors`: the last block a watcher has fully applied (one row per watcher).
- `chain_events`: every escrow event the watcher applied, unique by (chain, tx, log
  index): applying is idempotent, and payouts/settlements are read from here.
  `accepted_funding` says, for settlements and deferred payments, whether the deposit was
  one the node took for the job (a refused deposit's refund is never the job's settlement).
- `chain_escrows`: one row per escrow key of a job (one per funding generation the node
  asked for, or that the job's requester funded): the node's view of that record, kept
  from the events, and what the node made of it (`accepted` deposit, result `verdict`).
  The settlement policy selects what is due from here with SQL.
- `chain_outbox`: transactions the node itself sends (assign, unassign, refund, dispute,
  finalize...), written in the same DB transaction as the decision and sent after commit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base, UTCDateTime, Wei, utcnow


class ChainCursor(Base):
    __tablename__ = "chain_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    block_number: Mapped[int] = mapped_column(BigInteger, nullable=False)
    block_hash: Mapped[str | None] = mapped_column(String(66))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class ChainEvent(Base):
    __tablename__ = "chain_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    contract_address: Mapped[str] = mapped_column(String(42), nullable=False)
    block_number: Mapped[int] = mapped_column(BigInteger, nullable=False)
    block_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    block_timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
    tx_hash: Mapped[str] = mapped_column(String(66), nullable=False)
    log_index: Mapped[int] = mapped_column(Integer, nullable=False)
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    job_key: Mapped[str | None] = mapped_column(String(66), index=True)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )
    requester: Mapped[str | None] = mapped_column(String(42), index=True)
    provider: Mapped[str | None] = mapped_column(String(42), index=True)
    provider_amount_wei: Mapped[int | None] = mapped_column(Wei)
    requester_amount_wei: Mapped[int | None] = mapped_column(Wei)
    fee_wei: Mapped[int | None] = mapped_column(Wei)
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    outcome: Mapped[str | None] = mapped_column(Text)
    accepted_funding: Mapped[bool | None] = mapped_column(Boolean)
    applied_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    __table_args__ = (
        UniqueConstraint("chain_id", "tx_hash", "log_index", name="uq_chain_events_log"),
        Index("ix_chain_events_event_block", "event", "block_number"),
    )


class ChainEscrow(Base):
    """The node's view of one escrow key of a job, from the events the watcher applied.

    `status`: `awaiting` (key issued in a funding call, no deposit yet), `open`, `bound`,
    `submitted`, `disputed`, `settled`. `accepted`: the node took this deposit for the
    job (False: refused, so it is refunded). `verdict` (on a result): `awaiting_report`,
    `accepted`, `disputed` (the node disputes it). `version` counts the events applied to
    the key: outbox decisions are deduplicated per version, so a skipped call is tried
    again only after the chain changed.
    """

    __tablename__ = "chain_escrows"

    job_key: Mapped[str] = mapped_column(String(66), primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    requester: Mapped[str] = mapped_column(String(42), nullable=False)
    generation: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="awaiting")
    accepted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    refusal: Mapped[str | None] = mapped_column(Text)
    amount_wei: Mapped[int | None] = mapped_column(Wei)
    deadline: Mapped[int | None] = mapped_column(BigInteger)
    challenge_window: Mapped[int | None] = mapped_column(BigInteger)
    funding_tag: Mapped[int | None] = mapped_column(Integer)
    funded_block: Mapped[int | None] = mapped_column(BigInteger)
    provider: Mapped[str | None] = mapped_column(String(42))
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    phase_end: Mapped[int | None] = mapped_column(BigInteger)
    result_digest: Mapped[str | None] = mapped_column(String(66))
    result_provider: Mapped[str | None] = mapped_column(String(42))
    result_attempt: Mapped[int | None] = mapped_column(Integer)
    verdict: Mapped[str | None] = mapped_column(String(16))
    verdict_reason: Mapped[str | None] = mapped_column(Text)
    disputed_by: Mapped[str | None] = mapped_column(String(42))
    outcome: Mapped[str | None] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )

    __table_args__ = (
        UniqueConstraint("job_id", "generation", name="uq_chain_escrows_job_generation"),
        Index("ix_chain_escrows_status_phase_end", "status", "phase_end"),
        Index("ix_chain_escrows_status_verdict", "status", "verdict"),
    )


class ChainOutbox(Base):
    __tablename__ = "chain_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    job_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )
    # contract call to make: {"function": name, "args": [...], "value": "0"}
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    # pending -> signed -> confirmed | failed
    status: Mapped[str] = mapped_column(String(16), default="pending", nullable=False)
    nonce: Mapped[int | None] = mapped_column(BigInteger)
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    raw_tx: Mapped[str | None] = mapped_column(Text)
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    receipt_status: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )

    __table_args__ = (Index("ix_chain_outbox_status_id", "status", "id"),)
