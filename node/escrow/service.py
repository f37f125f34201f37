"""Rules of the chain domain: funding, applying escrow events, judging results, read models.

Keys. A job's escrow key names its requester, a funding generation and the job number
(`marketplace.escrow.job_key`). `funding_request` asks for the job's current generation:
the newest one while no deposit arrived on it, a new one after a deposit was refused or
the job was retried. One `chain_escrows` row per key keeps the node's view of the record.

Events (`apply_escrow_event`, exactly once per log):
- `JobFunded` on the job's current key, by its requester, meeting the node's terms (the
  reward, the challenge window the node asked for, a deadline that leaves the job at
  least `min_job_seconds` and no more than the node's own deadline) opens an
  `awaiting_funding` job (-> `pending`). Anything else is refused: the reason goes to the
  job's event log and the deposit goes back to its requester (the policy's `refund`).
  A deposit on a key that names another requester is never the job's: it is that
  funder's own money, which only it can fund or cancel.
- `ProviderBound`/`ProviderReleased` keep the binding; the policy compares it with the
  job's lease.
- `ResultSubmitted` is judged at once (`judge_result`), never ignored: `accepted` when it
  is the live lease holder's result and its digest is the digest of the result CID that
  lease reported; `awaiting_report` while the submitting lease is still live and has not
  reported; otherwise (a digest that differs, a lease that had ended, a result nobody
  reported, a deposit the job does not use) the node disputes it on chain, which freezes
  the money for the arbiter (whose silence refunds the requester).
- `JobDisputed` -> `disputed`; `JobSettled` moves the job to its final state when it
  settles the job's live funding (other deposits only go to its event log).

Requester calls (`{chain_id, to, data, value}`, signed by the requester's wallet):
`funding_for_job`, `cancel_call`, `accept_call`, `dispute_call`. Read models:
`list_payouts`, `settlement_for_job` (only deposits the node accepted for the job), with
their deferred payments, and `escrow_view` (what the chain holds for the job, a result
that exists only on chain included).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from marketplace.errors import ChainError, Conflict, JobNotFound, NotAwaitingFunding, NotFound
from marketplace.escrow.client import Status
from marketplace.escrow.keys import cid_digest, cidv0_of_digest, parse_job_key
from marketplace.jobs.states import JobStatus, can_transition
from node.escrow import repository
from node.escrow.outbox import enqueue_new
from node.jobs.service import record_event, transition
from node.models.escrow import ChainEscrow, ChainEvent
from node.models.jobs import Job

log = logging.getLogger("dcm.chain.service")

OUTCOMES = {
    0: "accepted",
    1: "finalized",
    2: "resolved",
    3: "default_ruling",
    4: "cancelled",
    5: "expired",
    6: "refunded",  # the assigner returned an Open deposit to its requester
}
_FINAL_STATUS = {
    "accepted": JobStatus.COMPLETED,
    "finalized": JobStatus.COMPLETED,
    "resolved": JobStatus.COMPLETED,
    "default_ruling": JobStatus.CANCELLED,
    "cancelled": JobStatus.CANCELLED,
    "expired": JobStatus.EXPIRED,
}
RESULT_MISMATCH = "result_digest_mismatch"


@dataclass(frozen=True)
class FundingTerms:
    """What the node asks of a deposit, and checks before it opens a job."""

    challenge_window_seconds: int = 24 * 3600
    deadline_seconds: int = 7 * 24 * 3600  # the deadline asked for when the job sets none
    min_job_seconds: int = 3600  # a deadline must leave the job at least this long
    slack_seconds: int = 24 * 3600  # chain clock vs the funding call's own clock

    @classmethod
    def from_settings(cls, settings: Any) -> FundingTerms:
        return cls(
            challenge_window_seconds=int(settings.chain_challenge_window_seconds),
            deadline_seconds=int(settings.funding_deadline_seconds),
            min_job_seconds=int(settings.chain_min_job_seconds),
        )


DEFAULT_TERMS = FundingTerms()


def terms_of(host: Any) -> FundingTerms:
    return getattr(host, "terms", None) or DEFAULT_TERMS


def _hex(value: bytes | str) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return value.lower()


def _same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and str(a).lower() == str(b).lower()


# -- keys and funding --------------------------------------------------------------------


def _require_requester(job: Job) -> str:
    if not job.requester_address:
        raise Conflict(
            "Job has no requester address: its escrow key names the wallet that funds it",
            details={"job_id": f"job_{job.id}"},
        )
    return to_checksum_address(job.requester_address)


def funding_escrow(session: Session, escrow: Any, job: Job) -> ChainEscrow:
    """The key the job's next deposit must use: its newest generation while no deposit
    arrived on it, else a new generation (the old key is retired: its deposit was refused,
    or it settled and the job was retried).

    The rows decide, not the caller's copy of the job: a read that loaded the job just
    before the watcher opened it on a deposit must not retire the key that deposit is on
    (409 NOT_AWAITING_FUNDING). Two first asks at once issue one key: the insert that
    loses takes the row that won.
    """
    requester = _require_requester(job)
    newest = repository.newest_escrow(session, job.id)
    if newest is not None and newest.status == "awaiting":
        return newest
    if newest is not None and newest.accepted and newest.status != "settled":
        raise NotAwaitingFunding(
            f"job_{job.id} is funded: the node took the deposit on its current key",
            details={"status": job.status, "escrow_status": newest.status},
        )
    generation = 0 if newest is None else newest.generation + 1
    row = ChainEscrow(
        job_key=_hex(escrow.job_key(job.id, requester, generation)),
        job_id=job.id,
        requester=requester,
        generation=generation,
        status="awaiting",
        accepted=False,
        attempt=0,
        version=0,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # a concurrent ask issued this generation first
        won = repository.newest_escrow(session, job.id)
        if won is None or won.generation != generation or won.status != "awaiting":
            raise
        return won
    return row


def funding_request(
    session: Session,
    escrow: Any,
    job: Job,
    *,
    now: int | None = None,
    terms: FundingTerms = DEFAULT_TERMS,
) -> dict[str, Any]:
    """`{chain_id, to, data, value}` a wallet signs to fund `job` (value: wei string).

    The deadline is the job's `deadline_at` when set, else now + `terms.deadline_seconds`.
    """
    if job.reward_wei <= 0:
        raise ChainError("job has no reward to fund")
    row = funding_escrow(session, escrow, job)
    if job.deadline_at is not None:
        deadline = int(job.deadline_at.timestamp())
    else:
        deadline = int(now if now is not None else time.time()) + terms.deadline_seconds
    return escrow.funding_call(
        row.job_key,
        amount_wei=int(job.reward_wei),
        deadline=deadline,
        challenge_window=terms.challenge_window_seconds,
        dataset_cid=job.folder_cid,
    )


def live_escrow(session: Session, job: Job) -> ChainEscrow | None:
    """The deposit the job runs on: accepted, its newest generation, the job at a stage
    that uses it (`repository.LIVE_JOB_STATUSES`); else None."""
    newest = repository.newest_escrow(session, job.id)
    if newest is None or not newest.accepted or job.status not in repository.LIVE_JOB_STATUSES:
        return None
    return newest


def _is_live(session: Session, row: ChainEscrow, job: Job) -> bool:
    live = live_escrow(session, job)
    return live is not None and live.job_key == row.job_key


def _job_for_key(session: Session, key: str) -> tuple[Job | None, ChainEscrow | None]:
    """The node's job a key belongs to (its number and requester), and the key's row."""
    row = repository.escrow(session, key)
    if row is not None:
        return session.get(Job, row.job_id), row
    parts = parse_job_key(key)
    job = session.get(Job, parts.number) if parts.number else None
    if job is None or not _same(job.requester_address, parts.requester):
        return None, None  # not a key of this node's jobs: a stranger's own money
    row = ChainEscrow(
        job_key=key,
        job_id=job.id,
        requester=parts.requester,
        generation=parts.generation,
        status="awaiting",
        accepted=False,
        attempt=0,
        version=0,
    )
    session.add(row)
    session.flush()
    return job, row


# -- applying events ---------------------------------------------------------------------


def apply_escrow_event(
    session: Session,
    escrow: Any,
    *,
    chain_id: int,
    event: str,
    args: dict[str, Any],
    address: str,
    block_number: int,
    block_hash: str,
    block_timestamp: int,
    tx_hash: str,
    log_index: int,
    terms: FundingTerms = DEFAULT_TERMS,
) -> bool:
    """Apply one escrow log once. Returns False when it was already applied."""
    tx_hash = _hex(tx_hash)
    if repository.event_exists(session, chain_id, tx_hash, log_index):
        return False
    key = _hex(args["jobKey"]) if "jobKey" in args else None
    job, row = _job_for_key(session, key) if key else (None, None)
    record = ChainEvent(
        chain_id=chain_id,
        contract_address=address,
        block_number=block_number,
        block_hash=_hex(block_hash),
        block_timestamp=block_timestamp,
        tx_hash=tx_hash,
        log_index=log_index,
        event=event,
        job_key=key,
        job_id=job.id if job else None,
        requester=args.get("requester"),
        provider=args.get("provider") or args.get("account"),
        args={k: _jsonable(v) for k, v in args.items()},
    )
    if event == "JobSettled":
        record.provider_amount_wei = int(args["providerAmount"])
        record.requester_amount_wei = int(args["requesterAmount"])
        record.fee_wei = int(args["fee"])
        record.outcome = OUTCOMES.get(int(args["outcome"]), str(args["outcome"]))
    if event in ("JobSettled", "PaymentDeferred") and row is not None:
        record.accepted_funding = row.accepted
    session.add(record)
    session.flush()
    if key and job is None:
        log.info("escrow event %s for key %s of no job of this node (tx %s)", event, key, tx_hash)
        return True
    if job is None or row is None:
        return True
    where = {"tx_hash": tx_hash, "block_number": block_number, "log_index": log_index}
    if event != "PaymentDeferred":
        row.version += 1
    if event == "JobFunded":
        _apply_funded(session, job, row, args, where, block_timestamp, terms)
    elif event == "ProviderBound":
        row.status, row.provider, row.attempt = "bound", str(args["provider"]), int(args["attempt"])
        record_event(session, job, "chain", "escrow ProviderBound", data={**where, **_data(args)})
    elif event == "ProviderReleased":
        row.status, row.provider = "open", None
        record_event(
            session, job, "chain", "escrow ProviderReleased", data={**where, **_data(args)}
        )
    elif event == "ResultSubmitted":
        row.status = "submitted"
        row.result_digest = _hex(args["resultDigest"])
        row.result_provider = str(args["provider"])
        row.result_attempt = row.attempt
        row.phase_end = int(args["challengeEnd"])
        row.verdict = row.verdict_reason = None
        judge_result(session, row, job, where)
    elif event == "JobDisputed":
        row.status = "disputed"
        row.phase_end = int(args["arbitrationEnd"])
        row.disputed_by = str(args["by"])
        data = {**where, "by": row.disputed_by, "arbitration_end": row.phase_end}
        if _is_live(session, row, job):
            _move(session, job, JobStatus.DISPUTED, "disputed", "escrow JobDisputed", data)
        else:
            record_event(
                session, job, "disputed", "escrow JobDisputed (not the job's deposit)", data=data
            )
    elif event == "JobSettled":
        _apply_settled(session, job, row, record, where)
    elif event == "PaymentDeferred":
        data = {**where, "account": str(args["account"]), "amount_wei": str(int(args["amount"]))}
        record_event(session, job, "payment_deferred", "a push failed: credited to owed", data=data)
    return True


def _data(args: dict[str, Any]) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in args.items() if k != "jobKey"}


def _apply_funded(
    session: Session,
    job: Job,
    row: ChainEscrow,
    args: dict[str, Any],
    where: dict,
    block_timestamp: int,
    terms: FundingTerms,
) -> None:
    was_current = row.status == "awaiting" and _is_newest(session, row)
    row.status = "open"
    row.amount_wei = int(args["amount"])
    row.deadline = row.phase_end = int(args["deadline"])
    row.challenge_window = int(args["challengeWindow"])
    row.funding_tag = block_timestamp & 0xFFFF
    row.funded_block = int(where["block_number"])
    row.provider, row.attempt = None, 0
    row.result_digest = row.result_provider = row.result_attempt = None
    row.verdict = row.verdict_reason = row.disputed_by = row.outcome = None
    data = {
        **where,
        "funder": str(args["requester"]),
        "amount_wei": str(row.amount_wei),
        "deadline": row.deadline,
        "challenge_window": row.challenge_window,
        "job_key": row.job_key,
    }
    reason = _refusal(job, row, was_current, block_timestamp, terms)
    row.accepted = reason is None
    row.refusal = reason
    if reason:
        # the deposit goes back to its requester (policy: refund); the key is retired, so
        # the job's next funding call names a new generation
        record_event(session, job, "funding_rejected", reason, level="warning", data=data)
        return
    transition(
        session, job, JobStatus.PENDING, event_type="funded", message="escrow funded", data=data
    )


def _is_newest(session: Session, row: ChainEscrow) -> bool:
    newest = repository.newest_escrow(session, row.job_id)
    return newest is not None and newest.job_key == row.job_key


def _refusal(
    job: Job, row: ChainEscrow, was_current: bool, now: int, terms: FundingTerms
) -> str | None:
    """Why the node will not open `job` on this deposit (None: it will)."""
    if job.status != JobStatus.AWAITING_FUNDING.value:
        return f"job is {job.status}, not awaiting funding"
    if not was_current:
        return (
            f"deposit on the retired key of generation {row.generation}: "
            "ask the node for the job's funding call"
        )
    if (row.amount_wei or 0) < int(job.reward_wei):
        return f"funded {row.amount_wei} wei, below the reward of {int(job.reward_wei)} wei"
    if row.challenge_window != terms.challenge_window_seconds:
        return (
            f"challenge window of {row.challenge_window} s; the node's terms are "
            f"{terms.challenge_window_seconds} s"
        )
    deadline = row.deadline or 0
    if deadline < now + terms.min_job_seconds:
        return (
            f"deadline leaves the job {max(deadline - now, 0)} s; "
            f"at least {terms.min_job_seconds} s are needed"
        )
    latest = now + terms.deadline_seconds + terms.slack_seconds
    if job.deadline_at is not None:
        latest = max(latest, int(job.deadline_at.timestamp()))
    if deadline > latest:
        return f"deadline {deadline} is later than the node's terms allow ({latest})"
    return None


def _move(
    session: Session, job: Job, target: JobStatus, event_type: str, message: str, data: dict
) -> bool:
    """Move `job` to `target` as a chain event says, through `running` where the table
    needs it (a provider may bind and submit on chain before reporting `start`); where the
    job cannot get there, the event only goes to its log. Returns whether it moved."""
    if job.status == target.value:
        record_event(session, job, event_type, message, data=data)
        return False
    if not can_transition(job.status, target) and (
        can_transition(job.status, JobStatus.RUNNING)
        and can_transition(JobStatus.RUNNING, target)
        and job.status != JobStatus.AWAITING_FUNDING.value
    ):
        transition(session, job, JobStatus.RUNNING, event_type="started", message=message)
    if can_transition(job.status, target):
        if target not in (JobStatus.CLAIMED, JobStatus.RUNNING):
            job.lease_id = job.lease_expires_at = None  # the chain ended the lease
        transition(session, job, target, event_type=event_type, message=message, data=data)
        return True
    record_event(
        session,
        job,
        event_type,
        f"{message} (job stays {job.status})",
        level="warning",
        data=data,
    )
    return False


def verdict_of(session: Session, row: ChainEscrow, job: Job) -> tuple[str, str]:
    """The node's judgement of the result on chain: (verdict, reason)."""
    provider, attempt = row.result_provider, row.result_attempt
    if not _is_live(session, row, job):
        return "disputed", "a result on a deposit the job does not run on"
    same_lease = job.attempt == attempt and _same(job.lease_holder, provider)
    if not same_lease:
        return "disputed", (
            f"submitted by {provider} for lease {attempt}, which had ended "
            f"(the job is {job.status} at attempt {job.attempt})"
        )
    if job.status in (JobStatus.CLAIMED.value, JobStatus.RUNNING.value):
        return "awaiting_report", "the lease holder's result: awaiting its report"
    if job.result_cid:
        expected = "0x" + cid_digest(job.result_cid).hex()
        if expected == row.result_digest:
            return "accepted", f"the digest of {job.result_cid}, reported by the lease holder"
        return "disputed", (
            f"on-chain result digest {row.result_digest} is not the digest of "
            f"{job.result_cid}, the result the lease holder reported"
        )
    return "disputed", f"nobody reported this result (the job is {job.status})"


def judge_result(session: Session, row: ChainEscrow, job: Job, where: dict | None = None) -> str:
    """Judge the result on chain (see `verdict_of`) and act: a result the node refuses is
    disputed on chain (an outbox row, sent after commit). Returns the verdict."""
    verdict, reason = verdict_of(session, row, job)
    previous = row.verdict
    row.verdict, row.verdict_reason = verdict, reason
    data = {
        **(where or {}),
        "provider": row.result_provider,
        "attempt": row.result_attempt,
        "result_digest": row.result_digest,
        "challenge_end": row.phase_end,
        "job_key": row.job_key,
    }
    if verdict == "awaiting_report":
        if previous != verdict:
            record_event(
                session, job, "result_on_chain", f"escrow ResultSubmitted: {reason}", data=data
            )
        return verdict
    if verdict == "accepted":
        if _is_live(session, row, job):
            _move(
                session,
                job,
                JobStatus.SUBMITTED,
                "submitted_on_chain",
                "escrow ResultSubmitted",
                data,
            )
        return verdict
    mismatch = "digest" in reason and job.result_cid
    record_event(
        session,
        job,
        RESULT_MISMATCH if mismatch else "result_refused",
        f"{reason}: the node disputes it (the arbiter rules; silence refunds the requester)",
        level="error",
        data=data,
    )
    enqueue_new(
        session,
        dedupe_key=f"dispute:{row.job_key}:{row.version}",
        action="dispute",
        function="dispute",
        args=[row.job_key],
        job_id=job.id,
        job_keys=[row.job_key],
    )
    return verdict


def _apply_settled(
    session: Session, job: Job, row: ChainEscrow, record: ChainEvent, where: dict
) -> None:
    live = _is_live(session, row, job)
    row.status, row.outcome = "settled", record.outcome
    data = {
        **where,
        "outcome": record.outcome,
        "provider": record.provider,
        "provider_amount_wei": str(record.provider_amount_wei),
        "requester_amount_wei": str(record.requester_amount_wei),
        "fee_wei": str(record.fee_wei),
        "job_key": row.job_key,
    }
    target = _FINAL_STATUS.get(record.outcome or "")
    if target == JobStatus.COMPLETED and not record.provider_amount_wei:
        target = JobStatus.CANCELLED  # a ruling that gave the requester everything
    if not live or target is None:
        # a refused deposit, one of a job that ended or was retried, or the node's refund
        record_event(session, job, "settled", f"escrow {record.outcome}", data=data)
        return
    _move(session, job, target, "settled", f"escrow {record.outcome}", data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if abs(value) > 2**53 else value
    return value


# -- the claim path ----------------------------------------------------------------------


def sync_lease(session: Session, job: Job) -> bool:
    """A lease of `job` was just granted: queue the release of any binding no live lease
    holds, then the node's own `assign` of this lease, in the claim's own transaction.
    Returns whether a row was queued."""
    queued = False
    live = live_escrow(session, job)
    for row in repository.escrows_of_job(session, job.id):
        if row.status == "bound" and not (
            live is not None
            and row.job_key == live.job_key
            and row.attempt == job.attempt
            and _same(row.provider, job.lease_holder)
        ):
            queued = enqueue_unassign(session, row) or queued
    if live is not None and live.status in ("open", "bound") and live.attempt < job.attempt:
        queued = enqueue_assign(session, live, job) or queued
    return queued


def enqueue_unassign(session: Session, row: ChainEscrow) -> bool:
    """Queue the release of `row`'s binding; False when decided before on this state."""
    out = enqueue_new(
        session,
        dedupe_key=f"unassign:{row.job_key}:{row.attempt}:{row.version}",
        action="unassign",
        function="unassign",
        args=[row.job_key, row.attempt],
        job_id=row.job_id,
        job_keys=[row.job_key],
    )
    return out is not None


def enqueue_assign(session: Session, row: ChainEscrow, job: Job) -> bool:
    """Queue the binding of `job`'s lease; False when decided before on this state."""
    out = enqueue_new(
        session,
        dedupe_key=f"assign:{row.job_key}:{job.attempt}:{row.version}",
        action="assign",
        function="assign",
        args=[row.job_key, to_checksum_address(job.lease_holder or ""), job.attempt],
        job_id=job.id,
        job_keys=[row.job_key],
    )
    return out is not None


# -- read models -------------------------------------------------------------------------


def _deferred(session: Session, rows: list[ChainEvent]) -> dict[tuple[str, str | None], list]:
    out: dict[tuple[str, str | None], list] = {}
    for event in repository.deferred_payments(session, [r.tx_hash for r in rows]):
        out.setdefault((event.tx_hash, event.job_key), []).append(
            {"account": event.provider, "amount_wei": str(int(event.args.get("amount", 0)))}
        )
    return out


def _payout(row: ChainEvent, deferred: list[dict[str, Any]]) -> dict[str, Any]:
    recipient = row.provider if row.provider_amount_wei else row.requester
    return {
        "job_id": f"job_{row.job_id}" if row.job_id else None,
        "job_key": row.job_key,
        "outcome": row.outcome,
        # who received the escrow: the provider when paid, else the refunded requester
        "recipient": recipient,
        "amount_wei": str(row.provider_amount_wei or row.requester_amount_wei or 0),
        "provider": row.provider,
        "provider_amount_wei": str(row.provider_amount_wei or 0),
        "requester": row.requester,
        "requester_refund_wei": str(row.requester_amount_wei or 0),
        "fee_wei": str(row.fee_wei or 0),
        # pushes that failed: the amount waits in the escrow's `owed` (withdraw / withdrawTo)
        "deferred": deferred,
        # a deposit the node refused (its refund), not the job's own funding
        "refused_deposit": row.accepted_funding is False,
        "tx_hash": row.tx_hash,
        "block_number": row.block_number,
        "timestamp": row.block_timestamp,
    }


def _payouts(session: Session, rows: list[ChainEvent]) -> list[dict[str, Any]]:
    deferred = _deferred(session, rows)
    return [_payout(r, deferred.get((r.tx_hash, r.job_key), [])) for r in rows]


def list_payouts(
    session: Session,
    *,
    provider: str | None = None,
    requester: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Settlements read from escrow events, newest first, filtered by party."""
    rows = repository.settlements(
        session,
        provider=to_checksum_address(provider) if provider else None,
        requester=to_checksum_address(requester) if requester else None,
        limit=limit,
    )
    return _payouts(session, rows)


def settlement_for_job(session: Session, job_id: int) -> dict[str, Any]:
    """The settlement of the job's own funding (404 NOT_FOUND if there is none yet): never
    the refund of a deposit the node refused."""
    if session.get(Job, job_id) is None:
        raise JobNotFound()
    rows = repository.settlements(session, job_id=job_id, accepted_only=True, limit=1)
    if not rows:
        raise NotFound("Job has no settlement yet")
    return _payouts(session, rows)[0]


def escrow_of_job(session: Session, job_id: int) -> dict[str, Any]:
    """`escrow_view` of job `job_id`: 404 JOB_NOT_FOUND without the job, 404 NOT_FOUND
    before it has an escrow key."""
    job = session.get(Job, job_id)
    if job is None:
        raise JobNotFound()
    view = escrow_view(session, job)
    if view is None:
        raise NotFound("Job has no escrow key yet")
    return view


def escrow_view(session: Session, job: Job) -> dict[str, Any] | None:
    """What the chain holds for the job: its newest key, which is its live deposit while
    it has one (`live_escrow`); None when the job never had a key. A result that exists
    only on chain shows here: its digest, who submitted it, the CIDv0 it names, and what
    the node made of it."""
    row = repository.newest_escrow_row(session, job.id)
    if row is None:
        return None
    result = None
    if row.result_digest:
        result = {
            "digest": row.result_digest,
            "cid": cidv0_of_digest(row.result_digest),
            "submitted_by": row.result_provider,
            "attempt": row.result_attempt,
            "verdict": row.verdict,
            "reason": row.verdict_reason,
        }
    return {
        "job_key": row.job_key,
        "generation": row.generation,
        "requester": row.requester,
        "status": row.status,
        "accepted": row.accepted,
        "refusal": row.refusal,
        "amount_wei": str(row.amount_wei) if row.amount_wei is not None else None,
        "deadline": row.deadline,
        "challenge_window": row.challenge_window,
        "phase_end": row.phase_end,
        "provider": row.provider,
        "attempt": row.attempt,
        "result": result,
        "disputed_by": row.disputed_by,
        "outcome": row.outcome,
    }


# -- requester actions -------------------------------------------------------------------


def chain_time(host: Any) -> int:
    """The chain's clock: the latest block's timestamp (time travel included)."""
    return int(host.w3.eth.get_block("latest")["timestamp"])


def funding_for_job(session: Session, host: Any, job: Job) -> dict[str, Any]:
    """The funding call of an `awaiting_funding` job (409 NOT_AWAITING_FUNDING otherwise).

    Without a job deadline, the escrow deadline counts from the job's creation, so the
    call is the same every time it is asked for; from the chain's clock instead when
    that is already close to it (a chain ahead of the wall clock).
    """
    if job.status != JobStatus.AWAITING_FUNDING.value:
        raise NotAwaitingFunding(
            f"Job is {job.status}, not awaiting funding",
            details={"status": job.status},
        )
    terms = terms_of(host)
    now = int(job.created_at.timestamp())
    chain_now = chain_time(host)
    if chain_now > now + terms.deadline_seconds - terms.slack_seconds:
        now = chain_now
    return funding_request(session, host.escrow(), job, now=now, terms=terms)


def funding_or_none(session: Session, host: Any, job: Job) -> dict[str, Any] | None:
    """The funding call when the job waits for one and the chain runs, else None."""
    if host is None or job.status != JobStatus.AWAITING_FUNDING.value or job.reward_wei <= 0:
        return None
    if not host.escrow_address or not job.requester_address:
        return None
    try:
        return funding_for_job(session, host, job)
    except NotAwaitingFunding:  # the watcher opened the job since it was read
        return None


class EscrowFunding:
    """The jobs domain's `Funding` port (`node.jobs.funding`) over this escrow domain.
    `host_of` returns the running chain host, None before start and after stop."""

    def __init__(self, host_of: Callable[[], Any]) -> None:
        self._host_of = host_of

    def funding_call(self, session: Session, job: Job) -> dict[str, Any] | None:
        return funding_or_none(session, self._host_of(), job)

    def escrow_view(self, session: Session, job: Job) -> dict[str, Any] | None:
        return escrow_view(session, job)


def _wallet_call(host: Any, function: str, *args: Any) -> dict[str, Any]:
    escrow = host.escrow()
    return {
        "chain_id": host.chain_id,
        "to": escrow.address,
        "data": escrow.contract.encode_abi(function, args=list(args)),
        "value": "0",
    }


def _live_record(session: Session, host: Any, job: Job) -> tuple[ChainEscrow, Any]:
    """The job's live deposit and its record as the chain holds it now (the node's view
    may lag the chain by a watcher tick); 409 CONFLICT when the job holds none."""
    row = live_escrow(session, job)
    if job.reward_wei <= 0 or row is None:
        raise Conflict(
            f"Job is {job.status} and holds no deposit in the escrow",
            details={"status": job.status},
        )
    return row, host.escrow().get_job(row.job_key)


def _key_bytes(row: ChainEscrow) -> bytes:
    return bytes.fromhex(row.job_key[2:])


def _wrong_status(job: Job, record: Any, what: str) -> ChainError:
    status = record.status.name.lower()
    return ChainError(
        f"escrow of job_{job.id} is {status}: {what}",
        error_name="WrongStatus",
        details={"escrow_status": status},
    )


def cancel_call(session: Session, host: Any, job: Job) -> dict[str, Any]:
    """`{chain_id, to, data, value: "0"}` the requester signs to cancel a funded, unbound
    job on chain itself (the refund comes from the contract; the watcher then cancels the
    job). The node refunds cancelled jobs on its own too (`POST /v1/jobs/{id}/cancel`):
    this is the requester's way that needs no node.

    409 CONFLICT for a job holding no deposit; one whose escrow is not open (bound,
    submitted, settled) cannot be cancelled on chain (409 CHAIN_REVERT, WrongStatus).
    """

    row, record = _live_record(session, host, job)
    if record.status != Status.OPEN:
        raise _wrong_status(job, record, "cancellable only while open")
    return _wallet_call(host, "cancel", _key_bytes(row))


def accept_call(session: Session, host: Any, job: Job) -> dict[str, Any]:
    """`{chain_id, to, data, value: "0"}` the requester signs to accept a submitted (or
    disputed) result: pays the provider at once."""

    row, record = _live_record(session, host, job)
    if record.status not in (Status.SUBMITTED, Status.DISPUTED):
        raise _wrong_status(job, record, "there is no result to accept")
    return _wallet_call(host, "accept", _key_bytes(row))


def dispute_call(session: Session, host: Any, job: Job) -> dict[str, Any]:
    """`{chain_id, to, data, value: "0"}` the requester signs to dispute the submitted
    result within the challenge window: the arbiter rules (silence refunds the requester).

    409 CHAIN_REVERT (`WrongStatus`) when no result waits in the escrow,
    (`ChallengeWindowClosed`) once the window is over."""

    row, record = _live_record(session, host, job)
    if record.status != Status.SUBMITTED:
        raise _wrong_status(job, record, "only a submitted result can be disputed")
    if chain_time(host) >= record.phase_end:
        raise ChainError(
            f"the challenge window of job_{job.id} closed at {record.phase_end}",
            error_name="ChallengeWindowClosed",
            details={"challenge_end": record.phase_end},
        )
    call = _wallet_call(host, "dispute", _key_bytes(row))
    record_event(
        session,
        job,
        "dispute_requested",
        "the requester asked for the dispute call",
        data={"job_key": row.job_key, "challenge_end": record.phase_end},
    )
    return call
