"""Tables of the chain domain: watcher cursor, applied chain events, job keys, outbox.

- `chain_cursors`: the last block a watcher has fully applied (one row per watcher).
- `chain_events`: every escrow event the watcher applied, unique by (chain, tx, log
  index): applying is idempotent, and payouts/settlements are read from here.
- `chain_job_keys`: escrow job key (bytes32 hex) -> node job id.
- `chain_outbox`: transactions the node itself sends (e.g. finalize after the window),
  written in the same DB transaction as the state change and sent after commit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
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
    applied_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    __table_args__ = (
        UniqueConstraint("chain_id", "tx_hash", "log_index", name="uq_chain_events_log"),
        Index("ix_chain_events_event_block", "event", "block_number"),
    )


class ChainJobKey(Base):
    __tablename__ = "chain_job_keys"

    job_key: Mapped[str] = mapped_column(String(66), primary_key=True)
    job_id: Mapped[int] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), unique=True, nullable=False
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
