"""The settlement policy: what the node does on its own for jobs whose money is on chain.

A periodic pass (`SettlementPolicy.run_once`, run by the watcher's loop every
`chain_policy_interval_seconds`) decides, in ONE database transaction per pass:

- finalize: a `submitted` (or `disputed`) job whose escrow's challenge (arbitration)
  window has passed on chain is finalized; the decision is an outbox row (`finalize`, or
  one `finalizeBatch` when several are due: ~25k gas per job instead of ~45k) written
  with a `finalize_requested` event on each job. Anyone may finalize; the node does it so
  providers get paid without acting. A job whose on-chain result digest differs from the
  digest of the result CID the node knows, or whose result CID the node never got, is not
  finalized by the node (the requester should dispute it).
- refund: a funded job whose on-chain deadline passed while its escrow is still `Open`
  or `Bound` (no result) gets a `refundExpired` outbox row.
- expiry: an `awaiting_funding` job older than `funding_timeout_seconds` becomes
  `expired`; after commit the pins of its dataset and metadata CIDs are removed unless
  another job that is not expired uses the same CID.

The outbox sends after commit (`node.chain.outbox`); the watcher then sees `JobSettled`
and moves the job to its final state. Every decision is idempotent: a job already
covered by an open outbox row, or whose escrow is no longer in the state that made it
due (read from the contract), is skipped, and outbox rows are deduplicated by key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.jobs.states import JobStatus
from node.chain import repository
from node.chain.models import ChainEvent
from node.chain.outbox import enqueue
from node.chain.service import RESULT_MISMATCH, chain_time, register_job_key
from node.db import session_scope, utcnow
from node.jobs.models import Job, JobEvent
from node.jobs.service import record_event, transition

log = logging.getLogger("dcm.chain.policy")

MAX_JOBS_PER_PASS = 500
MAX_BATCH = 50


@dataclass
class PolicyReport:
    finalize: list[int] = field(default_factory=list)
    refund: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    unpinned: list[str] = field(default_factory=list)

    @property
    def enqueued(self) -> bool:
        return bool(self.finalize or self.refund)


class SettlementPolicy:
    def __init__(
        self,
        host: Any,
        sessions: sessionmaker[Session],
        *,
        funding_timeout_seconds: float,
        content: Any = None,
    ) -> None:
        self.host = host
        self.sessions = sessions
        self.funding_timeout_seconds = funding_timeout_seconds
        self.content = content

    def run_once(self) -> PolicyReport:
        report = PolicyReport()
        release: list[str] = []
        with session_scope(self.sessions) as session:
            if self.host is not None and self.host.escrow_address:
                escrow = self.host.escrow()
                now = chain_time(self.host)
                head = int(self.host.w3.eth.block_number)
                covered = _covered_job_ids(session)
                report.finalize = self._finalize(session, escrow, now, head, covered)
                report.refund = self._refund(session, escrow, now, covered)
            report.expired, release = self._expire_unfunded(session)
        report.unpinned = self._release_pins(release)
        if report.enqueued or report.expired:
            log.info(
                "policy: finalize %s, refund %s, expired %s, unpinned %d",
                report.finalize,
                report.refund,
                report.expired,
                len(report.unpinned),
            )
        return report

    # -- finalize --------------------------------------------------------------------------

    def _finalize(
        self, session: Session, escrow: Any, now: int, head: int, covered: set[int]
    ) -> list[int]:
        from marketplace.escrow.client import Status

        stmt = (
            select(Job)
            .where(
                Job.status.in_((JobStatus.SUBMITTED.value, JobStatus.DISPUTED.value)),
                Job.reward_wei > 0,
            )
            .order_by(Job.id)
            .limit(MAX_JOBS_PER_PASS)
        )
        due: list[tuple[Job, str]] = []
        for job in session.execute(stmt).scalars():
            if job.id in covered:
                continue
            key = register_job_key(session, escrow, job.id)
            record = escrow.get_job(key)
            if record.status not in (Status.SUBMITTED, Status.DISPUTED):
                continue
            if record.phase_end > now:
                continue
            if record.status == Status.SUBMITTED and not self._result_verified(
                session, escrow, job
            ):
                continue
            due.append((job, key))
        due = due[:MAX_BATCH]
        if not due:
            return []
        ids = [job.id for job, _ in due]
        if len(due) == 1:
            job, key = due[0]
            row = enqueue(
                session,
                dedupe_key=f"finalize:{job.id}@{head}",
                action="finalize",
                function="finalize",
                args=[key],
                job_id=job.id,
            )
        else:
            digest = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:32]
            row = enqueue(
                session,
                dedupe_key=f"finalize_batch:{digest}@{head}",
                action="finalize_batch",
                function="finalizeBatch",
                args=[[key for _, key in due]],
                job_id=ids[0],
            )
        row.payload = {**row.payload, "job_ids": ids}
        for job, _ in due:
            record_event(
                session,
                job,
                "finalize_requested",
                "window over on chain: the node finalizes the escrow",
                data={"outbox_id": row.id, "batch": len(due)},
            )
        return ids

    def _result_verified(self, session: Session, escrow: Any, job: Job) -> bool:
        """The latest on-chain result digest equals the digest of the job's result CID."""
        stmt = (
            select(ChainEvent)
            .where(ChainEvent.job_id == job.id, ChainEvent.event == "ResultSubmitted")
            .order_by(ChainEvent.block_number.desc(), ChainEvent.log_index.desc())
            .limit(1)
        )
        event = session.execute(stmt).scalar_one_or_none()
        if event is None or not job.result_cid:
            return False
        expected = "0x" + bytes(escrow.cid_digest(job.result_cid)).hex()
        actual = str(event.args.get("resultDigest", "")).lower()
        if expected == actual:
            return True
        already = session.execute(
            select(JobEvent.id).where(JobEvent.job_id == job.id, JobEvent.type == RESULT_MISMATCH)
        ).first()
        if already is None:
            record_event(
                session,
                job,
                RESULT_MISMATCH,
                f"on-chain result digest {actual} is not the digest of {job.result_cid}: "
                "the node does not finalize",
                level="error",
                data={"expected_digest": expected, "result_digest": actual},
            )
        return False

    # -- refund ----------------------------------------------------------------------------

    def _refund(self, session: Session, escrow: Any, now: int, covered: set[int]) -> list[int]:
        from marketplace.escrow.client import Status

        live = (JobStatus.PENDING.value, JobStatus.CLAIMED.value, JobStatus.RUNNING.value)
        stmt = (
            select(Job, ChainEvent)
            .join(ChainEvent, ChainEvent.job_id == Job.id)
            .where(Job.status.in_(live), Job.reward_wei > 0, ChainEvent.event == "JobFunded")
            .order_by(Job.id)
            .limit(MAX_JOBS_PER_PASS)
        )
        refunded: list[int] = []
        for job, funded in session.execute(stmt).all():
            if job.id in covered or job.id in refunded:
                continue
            if int(funded.args.get("deadline", 0)) > now:
                continue
            key = register_job_key(session, escrow, job.id)
            record = escrow.get_job(key)
            if record.status not in (Status.OPEN, Status.BOUND) or record.phase_end > now:
                continue
            row = enqueue(
                session,
                dedupe_key=f"refund_expired:{job.id}",
                action="refund_expired",
                function="refundExpired",
                args=[key],
                job_id=job.id,
            )
            row.payload = {**row.payload, "job_ids": [job.id]}
            record_event(
                session,
                job,
                "refund_requested",
                "deadline passed on chain without a result: the node refunds the requester",
                data={"outbox_id": row.id},
            )
            refunded.append(job.id)
        return refunded

    # -- unfunded expiry ------------------------------------------------------------------

    def _expire_unfunded(self, session: Session) -> tuple[list[int], list[str]]:
        cutoff = utcnow() - dt.timedelta(seconds=self.funding_timeout_seconds)
        stmt = (
            select(Job)
            .where(Job.status == JobStatus.AWAITING_FUNDING.value, Job.created_at < cutoff)
            .order_by(Job.id)
            .limit(MAX_JOBS_PER_PASS)
        )
        expired: list[int] = []
        cids: list[str] = []
        for job in session.execute(stmt).scalars():
            transition(
                session,
                job,
                JobStatus.EXPIRED,
                event_type="expired",
                message=f"not funded within {int(self.funding_timeout_seconds)} s",
            )
            expired.append(job.id)
            cids.extend(c for c in (job.folder_cid, job.metadata_cid) if c)
        return expired, sorted(set(cids))

    def _release_pins(self, cids: list[str]) -> list[str]:
        """After commit: unpin each CID no job that is not expired still uses."""
        if not cids or self.content is None:
            return []
        with session_scope(self.sessions) as session:
            in_use = set(
                session.execute(
                    select(Job.folder_cid).where(
                        Job.folder_cid.in_(cids), Job.status != JobStatus.EXPIRED.value
                    )
                ).scalars()
            ) | set(
                session.execute(
                    select(Job.metadata_cid).where(
                        Job.metadata_cid.in_(cids), Job.status != JobStatus.EXPIRED.value
                    )
                ).scalars()
            )
        released = []
        for cid in cids:
            if cid in in_use:
                continue
            try:
                if self.content.is_pinned(cid):
                    self.content.unpin(cid)
                    released.append(cid)
            except Exception:  # the store may be down: the blocks stay, nothing breaks
                log.exception("could not unpin %s", cid)
        return released


def _covered_job_ids(session: Session) -> set[int]:
    """Jobs an open outbox row (pending or signed) already acts on."""
    covered: set[int] = set()
    for row in repository.outbox_open(session):
        ids = (row.payload or {}).get("job_ids") or ([row.job_id] if row.job_id else [])
        covered.update(int(i) for i in ids)
    return covered
