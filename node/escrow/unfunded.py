"""Rules of TrainChain's two-phase job creation on the funding gate (seed 000's
`/jobs/confirm`, `/jobs/delete`, `/jobs/retry-info`).

TrainChain creates a job `unconfirmed`, has the requester's wallet pay the contract, then
confirms it (or deletes it when the payment failed, or asks what to pay again). Here the
escrow deposit itself is the confirmation: the chain watcher opens a job (`pending`) when
the requester's deposit lands. So `confirm` only reports: the job once the node has seen
its deposit, else 409 NOT_FUNDED saying what is missing (with the funding call to sign).
`retry-info` is the funding call again (`funding_for_job`), plus the text to sign to
delete the job instead. `delete` takes that signature (EIP-191 personal_sign of
`marketplace.jobs.deletion.delete_job_message`, recovering to the job's requester) and
cancels the unfunded job for good: the row stays `cancelled` (not removed), so that a
deposit still on its way for it is refused and refunded by the watcher instead of
landing on a job the node no longer knows. A job that is or was funded is refused (409
JOB_FUNDED): its money is in the escrow, and `/v1/jobs/{id}/cancel` refunds it.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from sqlalchemy.orm import Session

from marketplace.addresses import InvalidAddressError, parse_address
from marketplace.errors import (
    InvalidField,
    InvalidSignature,
    InvalidTransition,
    JobFunded,
    NotFunded,
    NotRequester,
)
from marketplace.jobs.deletion import delete_job_message
from marketplace.jobs.states import JobStatus
from node.datasets.schemas import iso_millis
from node.escrow.service import funding_for_job
from node.jobs.service import transition
from node.models.jobs import Job

# States in which the job has no deposit now and never will (a new upload is needed).
_GONE = (JobStatus.CANCELLED.value, JobStatus.EXPIRED.value)


def delete_message(job: Job) -> str:
    """The text the requester's wallet signs to delete `job`."""
    return delete_job_message(
        job.id, job.requester_address or "", job.metadata_cid, iso_millis(job.created_at) or ""
    )


def confirmed(session: Session, host: Any, job: Job) -> Job:
    """`job` once the node has seen its deposit; 409 NOT_FUNDED otherwise (awaiting its
    deposit: `details.funding` is the call to sign; or cancelled/expired unfunded)."""
    if job.status == JobStatus.AWAITING_FUNDING.value:
        call = funding_for_job(session, host, job) if host is not None else None
        raise NotFunded(
            "The escrow holds no deposit for this job yet: sign and send its funding call "
            "(the node sees a deposit within a chain watch interval)",
            details={"missing": "deposit", "status": job.status, "funding": call},
        )
    if job.status in _GONE:
        raise NotFunded(
            f"Job is {job.status}: nothing funds it any more; upload it again",
            details={"missing": "job", "status": job.status},
        )
    return job


def retry_info(session: Session, host: Any, job: Job) -> dict[str, Any]:
    """The funding call of an unfunded job (409 NOT_AWAITING_FUNDING otherwise) and the
    text whose signature deletes it."""
    return {"funding": funding_for_job(session, host, job), "delete_message": delete_message(job)}


def delete_unfunded(session: Session, job: Job, address: str, signature: str) -> Job:
    """Cancel `job` for its requester `address`, proved by `signature` of its delete
    message: 422 for a malformed address, 403 NOT_REQUESTER for another address, 401
    INVALID_SIGNATURE when the signature is not that address's, 409 JOB_FUNDED for a job
    that is or was funded, 409 INVALID_TRANSITION for one already cancelled or expired."""
    try:
        claimed = parse_address(address)
    except InvalidAddressError as exc:
        raise InvalidField(
            f"requesterAddress: {exc}", details={"field": "requesterAddress"}
        ) from None
    if (job.requester_address or "").lower() != claimed.lower():
        raise NotRequester("Only the job's requester may delete it", details={"job_id": job.id})
    try:
        signer = Account.recover_message(
            encode_defunct(text=delete_message(job)), signature=signature
        )
    except Exception as exc:  # eth-keys raises several types for a malformed signature
        raise InvalidSignature("Signature does not recover to an address") from exc
    if signer.lower() != claimed.lower():
        raise InvalidSignature(
            "Signature is not the requester's signature of this job's delete message "
            "(GET /jobs/retry-info/{id} serves it)"
        )
    if job.status in _GONE:
        raise InvalidTransition(f"Job is already {job.status}", details={"status": job.status})
    if job.status != JobStatus.AWAITING_FUNDING.value:
        raise JobFunded(
            f"Job is {job.status}: its reward is in the escrow; cancel it (refund) with "
            "POST /v1/jobs/{id}/cancel instead",
            details={"status": job.status},
        )
    return transition(
        session,
        job,
        JobStatus.CANCELLED,
        event_type="deleted",
        message=f"Deleted unfunded by its requester {claimed}",
    )
