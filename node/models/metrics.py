"""Resource and training samples of a job (`node.jobs.metrics` reads and writes them).

One row per sample, plain numeric columns (no JSON for resource samples, so that a
job's 20 000 samples stay a few MB): a resource sample has `epoch` NULL and any of the
resource columns set; a training entry has `epoch` (1-based) and its `metrics` (flat
name -> number). `attempt` is the lease's attempt that reported it: counters (network
bytes) restart with each attempt.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base, UTCDateTime


class JobMetric(Base):
    __tablename__ = "job_metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    # When the provider took the sample (clamped to the job's life on the node's clock).
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, nullable=False)
    cpu_millicores: Mapped[float | None] = mapped_column(Float)
    memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    # Cumulative since the attempt started (as Docker and /proc count them).
    network_rx_bytes: Mapped[int | None] = mapped_column(BigInteger)
    network_tx_bytes: Mapped[int | None] = mapped_column(BigInteger)
    gpu_utilization: Mapped[float | None] = mapped_column(Float)  # percent, 0-100
    gpu_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    epoch: Mapped[int | None] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_job_metrics_job_at", "job_id", "at"),
        Index("ix_job_metrics_at", "at"),
    )
