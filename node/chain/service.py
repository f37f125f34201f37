"""Rules of the chain domain: the funding gate, applying escrow events, payouts.

- `funding_request(...)`: what a requester's wallet signs to fund a job
  (`{chain_id, to, data, value}`), registering the job's escrow key.
- `apply_escrow_event(...)`: one decoded escrow log -> DB effects, exactly once (a
  `chain_events` row unique by (chain, tx, log index) records that it was applied).
  `JobFunded` opens an `awaiting_funding` job (-> `pending`) only when the funder is the
  job's requester and the amount covers the reward; otherwise (or when the job has
  ended: a deposit on the key of a job whose escrow was settled) the reason
  goes to the job's event log and an outbox row `reject`s the deposit (the node is the
  escrow's assigner: the funder gets it back and the key is free again).
  `ResultSubmitted` -> `submitted` (digest checked against the result CID),
  `JobDisputed` -> `disputed`, `ProviderBound`/`ProviderReleased` -> event log.
  `JobSettled` moves the job to its final state where the job table allows it and is
  the source of payouts.
- `funding_for_job`, `cancel_call`, `accept_call`: the calls a requester's wallet signs.
- `list_payouts(...)`, `settlement_for_job(...)`: read from applied `JobSettled` events.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy.orm import Session

from marketplace.errors import ChainError, Conflict, JobNotFound, NotAwaitingFunding, NotFound
from marketplace.escrow.keys import job_number_of_key
from marketplace.jobs.states import TERMINAL, JobStatus, can_transition
from node.chain import repository
from node.chain.models import ChainEvent, ChainJobKey
from node.jobs.models import Job
from node.jobs.service import record_event, transition

log = logging.getLogger("dcm.chain.service")

DEFAULT_FUNDING_DEADLINE_SECONDS = 7 * 24 * 3600
DEFAULT_CHALLENGE_WINDOW_SECONDS = 24 * 3600

OUTCOMES = {
    0: "accepted",
    1: "finalized",
    2: "resolved",
    3: "default_ruling",
    4: "cancelled",
    5: "expired",
    6: "rejected",  # the assigner returned a squatter's funding; the key is free again
}
_FINAL_STATUS = {
    "accepted": JobStatus.COMPLETED,
    "finalized": JobStatus.COMPLETED,
    "resolved": JobStatus.COMPLETED,
    "default_ruling": JobStatus.COMPLETED,
    "cancelled": JobStatus.CANCELLED,
    "expired": JobStatus.EXPIRED,
}


def _hex(value: bytes | str) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return value.lower()


def register_job_key(session: Session, escrow: Any, job_id: int) -> str:
    """Record the escrow key of `job_id` (idempotent); returns it as 0x hex."""
    key = _hex(escrow.job_key(job_id))
    if repository.job_id_for_key(session, key) is None:
        session.add(ChainJobKey(job_key=key, job_id=job_id))
        session.flush()
    return key


def funding_request(
    session: Session,
    escrow: Any,
    job: Job,
    *,
    now: int | None = None,
    deadline_seconds: int = DEFAULT_FUNDING_DEADLINE_SECONDS,
    challenge_window_seconds: int = DEFAULT_CHALLENGE_WINDOW_SECONDS,
) -> dict[str, Any]:
    """`{chain_id, to, data, value}` a wallet signs to fund `job` (value: wei string).

    The deadline is the job's `deadline_at` when set, else now + `deadline_seconds`.
    """
    if job.reward_wei <= 0:
        raise ChainError("job has no reward to fund")
    register_job_key(session, escrow, job.id)
    if job.deadline_at is not None:
        deadline = int(job.deadline_at.timestamp())
    else:
        deadline = int(now if now is not None else time.time()) + deadline_seconds
    return escrow.funding_call(
        job.id,
        amount_wei=int(job.reward_wei),
        deadline=deadline,
        challenge_window=challenge_window_seconds,
        dataset_cid=job.folder_cid,
    )


def _job_for_key(session: Session, escrow: Any, key: str) -> Job | None:
    job_id = repository.job_id_for_key(session, key)
    if job_id is None:
        # a wallet may fund without asking the node: the key names the job it is for
        number = job_number_of_key(key)
        job = session.get(Job, number) if number is not None else None
        if job is None or job.status != JobStatus.AWAITING_FUNDING.value:
            return None
        register_job_key(session, escrow, job.id)
        return job
    return session.get(Job, job_id)


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
) -> bool:
    """Apply one escrow log once. Returns False when it was already applied."""
    tx_hash = _hex(tx_hash)
    if repository.event_exists(session, chain_id, tx_hash, log_index):
        return False
    key = _hex(args["jobKey"]) if "jobKey" in args else None
    job = _job_for_key(session, escrow, key) if key else None
    row = ChainEvent(
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
        row.provider_amount_wei = int(args["providerAmount"])
        row.requester_amount_wei = int(args["requesterAmount"])
        row.fee_wei = int(args["fee"])
        row.outcome = OUTCOMES.get(int(args["outcome"]), str(args["outcome"]))
    session.add(row)
    session.flush()
    where = {"tx_hash": tx_hash, "block_number": block_number, "log_index": log_index}
    if key and job is None:
        log.warning("escrow event %s for unknown job key %s (tx %s)", event, key, tx_hash)
        return True
    if job is None:
        return True
    if event == "JobFunded":
        _apply_funded(session, job, args, where, key)
    elif event == "JobSettled":
        _apply_settled(session, job, row, where)
    elif event == "ResultSubmitted":
        _apply_result(session, escrow, job, args, where)
    elif event == "JobDisputed":
        data = {**where, "arbitration_end": int(args["arbitrationEnd"])}
        _move(session, job, JobStatus.DISPUTED, "disputed", "escrow JobDisputed", data)
    else:
        record_event(session, job, "chain", f"escrow {event}", data={**where, "event": event})
    return True


def _apply_funded(
    session: Session, job: Job, args: dict[str, Any], where: dict, key: str | None
) -> None:
    funder = str(args["requester"])
    amount = int(args["amount"])
    data = {**where, "funder": funder, "amount_wei": str(amount)}
    reason = None
    if job.status != JobStatus.AWAITING_FUNDING.value:
        reason = f"job is {job.status}, not awaiting funding"
    elif not job.requester_address:
        reason = "job has no requester address"
    elif funder.lower() != job.requester_address.lower():
        reason = f"funded by {funder}, not by the job's requester {job.requester_address}"
    elif amount < int(job.reward_wei):
        reason = f"funded {amount} wei, below the reward of {int(job.reward_wei)} wei"
    if reason:
        record_event(session, job, "funding_rejected", reason, level="warning", data=data)
        if key and (job.status == JobStatus.AWAITING_FUNDING.value or job.status in TERMINAL):
            # The node (the escrow's assigner) hands the deposit back to whoever made it
            # and frees the key: sent after commit, once. A job that ended can only see a
            # new deposit after its escrow was settled (the record deleted): stray too. A
            # live job's deposit is left alone (its record is the one being worked on).
            from node.chain.outbox import enqueue

            enqueue(
                session,
                dedupe_key=f"reject:{where['tx_hash']}:{where['log_index']}",
                action="reject",
                function="reject",
                args=[key],
                job_id=job.id,
            )
        return
    transition(
        session, job, JobStatus.PENDING, event_type="funded", message="escrow funded", data=data
    )


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


def _apply_result(
    session: Session, escrow: Any, job: Job, args: dict[str, Any], where: dict
) -> None:
    """`ResultSubmitted`: the job is `submitted` (it may already be, when the provider
    reported through the API first; while the submitting provider still holds the job's
    lease and has not reported yet, the node waits for that report instead, so both
    orders work). The on-chain digest must be the digest of the result CID the node knows;
    a mismatch is logged and the job is not moved (and the node never finalizes it:
    `policy`)."""
    digest = _hex(args["resultDigest"])
    data = {
        **where,
        "provider": str(args["provider"]),
        "result_digest": digest,
        "challenge_end": int(args["challengeEnd"]),
    }
    if job.result_cid:
        expected = _hex(escrow.cid_digest(job.result_cid))
        if expected != digest:
            record_event(
                session,
                job,
                RESULT_MISMATCH,
                f"on-chain result digest {digest} is not the digest of {job.result_cid}",
                level="error",
                data={**data, "expected_digest": expected, "result_cid": job.result_cid},
            )
            return
    elif (
        job.status in (JobStatus.CLAIMED.value, JobStatus.RUNNING.value)
        and (job.lease_holder or "").lower() == str(args["provider"]).lower()
    ):
        # The provider daemon submits on chain, then reports the result through the API:
        # while its lease is live the API report moves the job (with the CID, which
        # the policy checks against this digest before it finalizes).
        record_event(
            session,
            job,
            "result_on_chain",
            "escrow ResultSubmitted: awaiting the report",
            data=data,
        )
        return
    _move(session, job, JobStatus.SUBMITTED, "submitted_on_chain", "escrow ResultSubmitted", data)


RESULT_MISMATCH = "result_digest_mismatch"


def _apply_settled(session: Session, job: Job, row: ChainEvent, where: dict) -> None:
    data = {
        **where,
        "outcome": row.outcome,
        "provider": row.provider,
        "provider_amount_wei": str(row.provider_amount_wei),
        "requester_amount_wei": str(row.requester_amount_wei),
        "fee_wei": str(row.fee_wei),
    }
    target = _FINAL_STATUS.get(row.outcome or "")
    if target == JobStatus.COMPLETED and not row.provider_amount_wei:
        target = JobStatus.CANCELLED  # a ruling that gave the requester everything
    if target is None or job.status == JobStatus.AWAITING_FUNDING.value:
        # an awaiting job never accepted a deposit: this refunds a rejected one
        record_event(session, job, "settled", f"escrow {row.outcome}", data=data)
        return
    _move(session, job, target, "settled", f"escrow {row.outcome}", data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value) if abs(value) > 2**53 else value
    return value


# -- payouts -----------------------------------------------------------------------------


def _payout(row: ChainEvent) -> dict[str, Any]:
    return {
        "job_id": f"job_{row.job_id}" if row.job_id else None,
        "job_key": row.job_key,
        "outcome": row.outcome,
        # who received the escrow: the provider when paid, else the refunded requester
        "recipient": row.provider if row.provider_amount_wei else row.requester,
        "amount_wei": str(row.provider_amount_wei or row.requester_amount_wei or 0),
        "provider": row.provider,
        "provider_amount_wei": str(row.provider_amount_wei or 0),
        "requester": row.requester,
        "requester_refund_wei": str(row.requester_amount_wei or 0),
        "fee_wei": str(row.fee_wei or 0),
        "tx_hash": row.tx_hash,
        "block_number": row.block_number,
        "timestamp": row.block_timestamp,
    }


def list_payouts(
    session: Session,
    *,
    provider: str | None = None,
    requester: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Settlements read from escrow events, newest first, filtered by party."""
    from eth_utils import to_checksum_address

    rows = repository.settlements(
        session,
        provider=to_checksum_address(provider) if provider else None,
        requester=to_checksum_address(requester) if requester else None,
        limit=limit,
    )
    return [_payout(r) for r in rows]


def settlement_for_job(session: Session, job_id: int) -> dict[str, Any]:
    """The settlement of `job_id` (404 JOB_NOT_FOUND if there is none yet)."""
    if session.get(Job, job_id) is None:
        raise JobNotFound()
    rows = repository.settlements(session, job_id=job_id, limit=1)
    if not rows:
        raise NotFound("Job has no settlement yet")
    return _payout(rows[0])


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
    now = int(job.created_at.timestamp())
    chain_now = chain_time(host)
    if chain_now > now + DEFAULT_FUNDING_DEADLINE_SECONDS - 24 * 3600:
        now = chain_now
    return funding_request(session, host.escrow(), job, now=now)


def funding_or_none(session: Session, host: Any, job: Job) -> dict[str, Any] | None:
    """The funding call when the job waits for one and the chain runs, else None."""
    if host is None or job.status != JobStatus.AWAITING_FUNDING.value or job.reward_wei <= 0:
        return None
    if not host.escrow_address:
        return None
    return funding_for_job(session, host, job)


def cancel_call(session: Session, host: Any, job: Job) -> dict[str, Any]:
    """`{chain_id, to, data, value: "0"}` the requester signs to cancel a funded, unbound
    job on chain (the refund comes from the contract; the watcher then cancels the job).

    409 CONFLICT for a job still awaiting funding (cancel it through the job API); one
    whose escrow is not `Open` (bound, submitted, settled) cannot be
    cancelled on chain (409 CHAIN_REVERT, `error_name` WrongStatus).
    """
    from marketplace.escrow.client import Status

    escrow = host.escrow()
    if job.status == JobStatus.AWAITING_FUNDING.value or job.reward_wei <= 0:
        raise Conflict(
            "Job holds no deposit: cancel it through the job API",
            details={"status": job.status},
        )
    key = register_job_key(session, escrow, job.id)
    record = escrow.get_job(key)
    if record.status != Status.OPEN:
        raise ChainError(
            f"escrow of job_{job.id} is {record.status.name.lower()}, cancellable only while open",
            error_name="WrongStatus",
            details={"escrow_status": record.status.name.lower()},
        )
    return {
        "chain_id": host.chain_id,
        "to": escrow.address,
        "data": escrow.contract.encode_abi("cancel", args=[bytes.fromhex(key[2:])]),
        "value": "0",
    }


def accept_call(session: Session, host: Any, job: Job) -> dict[str, Any]:
    """`{chain_id, to, data, value: "0"}` the requester signs to accept a submitted result
    (pays the provider at once)."""
    escrow = host.escrow()
    key = register_job_key(session, escrow, job.id)
    return {
        "chain_id": host.chain_id,
        "to": escrow.address,
        "data": escrow.contract.encode_abi("accept", args=[bytes.fromhex(key[2:])]),
        "value": "0",
    }
