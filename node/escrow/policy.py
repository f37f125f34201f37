"""The settlement policy: what the node does on its own for jobs whose money is on chain.

Node and chain must agree whatever the timing, so the policy compares the two and queues
the escrow calls that bring the chain to what the jobs say (an outbox row each, written in
the same database transaction as the decision, sent after commit). Every "what is due"
selection is one SQL query over `chain_escrows` (`node.escrow.repository`), by status and
phase end, the most overdue first: no job id range is scanned and filtered.

`reconcile()` (every watcher tick, and at once after a claim or a reaped lease):
- unassign: a bound escrow whose binding no live lease holds (the lease expired, was handed
  back or failed, the job was cancelled or retried): the chain is fenced when a lease ends;
- assign: a live lease whose escrow is Open at a lower attempt (the claim's own row was
  skipped or lost);
- judge: results on chain not judged yet, or waiting for their lease holder's report; a
  result the node refuses is disputed on chain (`service.judge_result`);
- refund: an Open deposit that is not its job's live funding (refused, or the job was
  cancelled, failed, expired or retried) goes back to its requester (`refund`, assigner).
  Within a tick or two of the cancel, not at the next full pass up to 30 s later: a
  requester who cancels sees the money back at once.

`run_once()` (every `chain_policy_interval_seconds`): `reconcile()`, then
- refund expired: an Open or Bound escrow past its deadline (`refundExpired`);
- finalize: results the node accepted whose challenge window is over (the provider is
  paid), and disputes the arbiter left unresolved (the default ruling refunds the
  requester), in one `finalizeBatch` when several are due;
- fees: what the escrow owes its fee recipient is withdrawn to it;
- expiry: an `awaiting_funding` job older than `funding_timeout_seconds` becomes `expired`;
  after commit the pins of its dataset and metadata CIDs are removed unless another job
  that is not expired uses the same CID.

Every decision is idempotent: an escrow an open outbox row already acts on is skipped,
and rows are deduplicated per escrow version (a call that would revert is skipped by the
outbox and tried again only after the chain changed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from marketplace.jobs.states import JobStatus
from node.db import session_scope, utcnow
from node.escrow import repository
from node.escrow.outbox import covered_keys, enqueue_new
from node.escrow.service import (
    chain_time,
    enqueue_assign,
    enqueue_unassign,
    judge_result,
)
from node.jobs.service import record_event, transition
from node.models.escrow import ChainEscrow
from node.models.jobs import Job

log = logging.getLogger("dcm.chain.policy")

MAX_ROWS_PER_QUERY = 200
MAX_BATCH = 50


@dataclass
class PolicyReport:
    unassign: list[int] = field(default_factory=list)
    assign: list[int] = field(default_factory=list)
    disputes: list[int] = field(default_factory=list)
    finalize: list[int] = field(default_factory=list)
    refund: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    fees_withdrawn: int = 0
    unpinned: list[str] = field(default_factory=list)

    @property
    def enqueued(self) -> bool:
        return bool(
            self.unassign
            or self.assign
            or self.disputes
            or self.finalize
            or self.refund
            or self.fees_withdrawn
        )


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

    def _chain_ready(self) -> bool:
        return self.host is not None and bool(self.host.escrow_address)

    def reconcile(self, report: PolicyReport | None = None) -> PolicyReport:
        """Bindings follow leases; results on chain are judged (see the module doc)."""
        report = report or PolicyReport()
        if not self._chain_ready():
            return report
        with session_scope(self.sessions) as session:
            covered = covered_keys(session)
            for row, _job in repository.bindings_to_release(session, MAX_ROWS_PER_QUERY):
                if row.job_key not in covered and enqueue_unassign(session, row):
                    covered.add(row.job_key)
                    report.unassign.append(row.job_id)
            for row, job in repository.leases_to_bind(session, MAX_ROWS_PER_QUERY):
                if row.job_key not in covered and enqueue_assign(session, row, job):
                    covered.add(row.job_key)
                    report.assign.append(job.id)
            for row, job in repository.results_to_judge(session, MAX_ROWS_PER_QUERY):
                if row.job_key in covered:
                    continue
                before = row.verdict
                if judge_result(session, row, job) == "disputed" and before != "disputed":
                    report.disputes.append(job.id)
            report.refund = self._refunds(session, covered)
        return report

    def run_once(self) -> PolicyReport:
        report = self.reconcile()
        release: list[str] = []
        if self._chain_ready():
            now = chain_time(self.host)
            with session_scope(self.sessions) as session:
                covered = covered_keys(session)
                report.refund += self._expired_refunds(session, now, covered)
                report.finalize = self._finalize(session, now, covered)
                report.fees_withdrawn = self._withdraw_fees(session)
        with session_scope(self.sessions) as session:
            report.expired, release = self._expire_unfunded(session)
        report.unpinned = self._release_pins(release)
        if report.enqueued or report.expired:
            log.info(
                "policy: unassign %s, assign %s, dispute %s, finalize %s, refund %s, "
                "expired %s, unpinned %d",
                report.unassign,
                report.assign,
                report.disputes,
                report.finalize,
                report.refund,
                report.expired,
                len(report.unpinned),
            )
        return report

    # -- refunds ---------------------------------------------------------------------------

    def _refunds(self, session: Session, covered: set[str]) -> list[int]:
        refunded: list[int] = []
        for row, job in repository.deposits_to_refund(session, MAX_ROWS_PER_QUERY):
            if row.job_key in covered:
                continue
            if self._enqueue_refund(session, row, job, "refund", "refund"):
                covered.add(row.job_key)
                refunded.append(job.id)
        return refunded

    def _expired_refunds(self, session: Session, now: int, covered: set[str]) -> list[int]:
        refunded: list[int] = []
        for row, job in repository.expired_deposits(session, now, MAX_ROWS_PER_QUERY):
            if row.job_key in covered:
                continue
            if self._enqueue_refund(session, row, job, "refund_expired", "refundExpired"):
                covered.add(row.job_key)
                refunded.append(job.id)
        return refunded

    def _enqueue_refund(
        self, session: Session, row: ChainEscrow, job: Job, action: str, function: str
    ) -> bool:
        out = enqueue_new(
            session,
            dedupe_key=f"{action}:{row.job_key}:{row.version}",
            action=action,
            function=function,
            args=[row.job_key],
            job_id=job.id,
            job_keys=[row.job_key],
        )
        if out is None:
            return False
        why = (
            "deadline passed on chain without a result"
            if function == "refundExpired"
            else row.refusal or f"the job is {job.status}: its deposit is not used"
        )
        record_event(
            session,
            job,
            "refund_requested",
            f"{why}: the node returns the deposit to its requester",
            data={"outbox_id": out.id, "job_key": row.job_key},
        )
        return True

    # -- finalize --------------------------------------------------------------------------

    def _finalize(self, session: Session, now: int, covered: set[str]) -> list[int]:
        due: list[tuple[ChainEscrow, Job, str]] = []
        for row, job in repository.results_to_finalize(session, now, MAX_BATCH):
            due.append((row, job, "the challenge window is over: the provider is paid"))
        for row, job in repository.disputes_to_close(session, now, MAX_BATCH):
            due.append((row, job, "the arbiter did not rule: the requester is refunded"))
        due = [d for d in due if d[0].job_key not in covered][:MAX_BATCH]
        if not due:
            return []
        keys = [row.job_key for row, _, _ in due]
        ids = [job.id for _, job, _ in due]
        version = ",".join(f"{row.job_key}@{row.version}" for row, _, _ in due)
        if len(due) == 1:
            function, args = "finalize", [keys[0]]
        else:
            function, args = "finalizeBatch", [keys]
        out = enqueue_new(
            session,
            dedupe_key=f"{function}:{hashlib.sha256(version.encode()).hexdigest()[:40]}",
            action="finalize" if len(due) == 1 else "finalize_batch",
            function=function,
            args=args,
            job_id=ids[0],
            job_keys=keys,
            job_ids=ids,
        )
        if out is None:  # decided before on this very chain state: sent, or skipped
            return []
        for _row, job, why in due:
            record_event(
                session,
                job,
                "finalize_requested",
                f"{why}: the node finalizes the escrow",
                data={"outbox_id": out.id, "batch": len(due)},
            )
        return ids

    # -- fees ------------------------------------------------------------------------------

    def _withdraw_fees(self, session: Session) -> int:
        """Withdraw what the escrow owes its fee recipient (anyone may; the node does)."""
        escrow = self.host.escrow()
        recipient = escrow.fee_recipient()
        if int(recipient, 16) == 0:
            return 0
        owed = escrow.owed(recipient)
        if owed <= 0:
            return 0
        if any(r.action == "withdraw_fees" for r in repository.outbox_open(session)):
            return 0
        head = int(self.host.w3.eth.block_number)
        enqueue_new(
            session,
            dedupe_key=f"withdraw_fees:{recipient}:{owed}@{head}",
            action="withdraw_fees",
            function="withdraw",
            args=[recipient],
        )
        return owed

    # -- unfunded expiry ------------------------------------------------------------------

    def _expire_unfunded(self, session: Session) -> tuple[list[int], list[str]]:
        cutoff = utcnow() - dt.timedelta(seconds=self.funding_timeout_seconds)
        expired: list[int] = []
        cids: list[str] = []
        for job in repository.unfunded_jobs_before(session, cutoff, MAX_ROWS_PER_QUERY):
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
            in_use = repository.cids_in_use(session, cids)
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
