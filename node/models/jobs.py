"""The canonical job and its event log. Every dialect reads and writes these rows.

Ids: one integer sequence. Seed 000 addresses a job by that integer (`/jobs/get-dataset/5`);
every other dialect shows it as `job_5`. Both spellings are accepted everywhere
(`marketplace.jobs.ids`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from node.db import Base, UTCDateTime, Wei, utcnow


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_type: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    priority: Mapped[str] = mapped_column(String(16), default="normal", nullable=False)
    # 0 low .. 3 urgent: sortable form of `priority`.
    priority_rank: Mapped[int] = mapped_column(Integer, default=1, nullable=False)

    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requester_address: Mapped[str | None] = mapped_column(String(42))

    # What to run: the payload/metadata/parameters of the dialect that created it, plus the
    # normalised executor settings (yolo: model, epochs, imgsz...; container: image, cpu...).
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result_type: Mapped[str | None] = mapped_column(String(64))
    result_cid: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    progress_percent: Mapped[int | None] = mapped_column(Integer)
    progress_message: Mapped[str | None] = mapped_column(Text)

    reward_wei: Mapped[int] = mapped_column(Wei, default=0, nullable=False)
    folder_cid: Mapped[str | None] = mapped_column(String(128))
    metadata_cid: Mapped[str | None] = mapped_column(String(128))
    batch_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # The provider network (seed 003's `provider`: "akash", "default"...) a job is for:
    # only providers that declared it may claim it. None: any provider (the other dialects).
    pool: Mapped[str | None] = mapped_column(String(64))

    retry_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    max_retries: Mapped[int] = mapped_column(Integer, default=3, nullable=False)
    # Fencing token: incremented on every claim; provider writes must carry the current one.
    attempt: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    lease_id: Mapped[str | None] = mapped_column(String(64))
    lease_holder: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The attempt a manual retry started its round from: provider attempts of this round are
    # `attempt - retry_base_attempt`, compared with `max_retries` (not `retry_count`).
    retry_base_attempt: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", nullable=False
    )
    # The provider whose attempt last failed or expired (not handed the job straight back).
    last_failed_by: Mapped[str | None] = mapped_column(String(64))

    # The sequence number of the job's last event (each event takes the next one), and the
    # log lines stored / dropped past the per-job limit.
    event_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    log_lines: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    log_dropped: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)

    estimated_duration_seconds: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    scheduled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    deadline_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    events: Mapped[list[JobEvent]] = relationship(
        back_populates="job",
        order_by="JobEvent.id",
        cascade="all, delete-orphan",
        lazy="selectin",
    )

    # List views read each branch of the caller's scope (a workspace; its own jobs without
    # one, by creator or by wallet) as a seek in (created_at, id) order. The claim's order
    # has its own index (`ix_jobs_claim_order`, below the class).
    __table_args__ = (
        # a claim counts the claimant's active jobs (its `max_concurrent`); jobs nobody
        # ever held (every new job) stay out of it, so creating a job does not write it
        Index(
            "ix_jobs_lease_holder_status",
            "lease_holder",
            "status",
            sqlite_where=text("lease_holder IS NOT NULL"),
            postgresql_where=text("lease_holder IS NOT NULL"),
        ),
        Index("ix_jobs_created_at_id", "created_at", "id"),
        Index("ix_jobs_workspace_created_id", "workspace_id", "created_at", "id"),
        Index(
            "ix_jobs_creator_workspace_created_id",
            "created_by",
            "workspace_id",
            "created_at",
            "id",
        ),
        Index(
            "ix_jobs_requester_workspace_created_id",
            "requester_address",
            "workspace_id",
            "created_at",
            "id",
        ),
    )


class JobBatch(Base):
    """Jobs submitted together (seed 003's batch): at most `concurrency` of them are
    claimed or running at once, enforced by the claim (`node.providers.service.claim`)."""

    __tablename__ = "job_batches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True
    )
    concurrency: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class JobTemplate(Base):
    """A reusable job configuration of a workspace (seed 003's job templates): `config`
    is the create body as the requester wrote it, validated when it was saved."""

    __tablename__ = "job_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), index=True, nullable=False
    )
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


# A claim reads pending jobs in its own order (`priority_rank` descending, then oldest,
# then id). The index holds that order, so a claim stops at the first jobs it may take;
# an index in one direction made PostgreSQL, which reads an index only forwards or
# backwards, sort every pending job for each claim (issue 12's profile: most of its CPU
# per claim, growing with the queue). Declared here: the descending column needs the
# mapped column itself.
Index("ix_jobs_claim_order", Job.status, Job.priority_rank.desc(), Job.created_at, Job.id)


class JobEvent(Base):
    """Append-only log of a job: state changes (`type` = the event word, with from/to
    status), progress reports (`type` = "progress") and log lines (`type` = "log", with
    level, message and `stream`). `seq` numbers a job's events 1, 2, 3... in commit order
    (taken from `Job.event_seq` under the job row's lock): streams resume after one."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    stream: Mapped[str | None] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(32))
    to_status: Mapped[str | None] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16), default="info", nullable=False)
    message: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempt: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    job: Mapped[Job] = relationship(back_populates="events")

    __table_args__ = (
        Index("ux_job_events_job_seq", "job_id", "seq", unique=True),
        Index("ix_job_events_type_created", "type", "created_at"),
    )
