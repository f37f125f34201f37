"""Rules of TrainChain's contributor routes (seed 000 `/jobs/contributor/...` and
`/jobs/model/upload`) on the provider domain: a contributor is a registered provider
signed in with its wallet (SIWE), and every step goes through the same functions as the
daemon's (`node.providers.service`), so leases, attempts and the chain's fencing hold
whichever way a job was taken.

- apply = claim (`service.claim_job`: the daemon's candidates, checks and
  compare-and-set, for the job the contributor chose), then the same on-chain assignment
  (`enqueue_assignment`, sent by the outbox after commit) and voucher as a polled claim.
  TrainChain's two-phase apply maps onto the lease: `initiate` = this claim, `confirm` =
  `service.start` (claimed -> running), `revert` = `service.release` (back to pending).
- model upload = what the daemon does after training: the lease is checked before a byte
  is stored, the files are added to the content store as one directory (the daemon's
  Kubo `add`, same CID), then `service.submit_result` records it under the lease. The
  daemon then sends the result digest on chain from its own key; a contributor's wallet
  does the same with the `submit_call` the upload answers (`submitWithVoucher`, which
  binds first if the node's own assignment has not landed).
- the contributor's current job: its live lease; its history: every job whose lease it
  holds or last held, each with the escrow's payouts to it (`/v1/payouts`' rows).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy.orm import Session

from marketplace.addresses import InvalidAddressError, parse_address
from marketplace.content.store import ContentStore
from marketplace.errors import AddressMismatch, InvalidField
from marketplace.escrow.keys import cid_digest
from marketplace.jobs.states import ACTIVE
from node.auth.principal import Principal
from node.config import NodeSettings
from node.datasets import repository as datasets_repository
from node.datasets.multipart import ReceivedUpload
from node.datasets.service import JOB_TYPE, DatasetService, query_address
from node.escrow.service import list_payouts
from node.models.jobs import Job
from node.models.providers import Provider
from node.providers import service
from node.providers.vouchers import assignment_voucher, enqueue_assignment

log = logging.getLogger("dcm.providers.trainchain")

HISTORY_LIMIT = 500
METRICS_FILE = "metrics.json"
RESULT_TYPE = "yolo_model"  # what the daemon's YOLO executor reports


@dataclass(frozen=True)
class Applied:
    job: Job
    voucher: dict[str, Any] | None
    queued: bool  # an on-chain assignment waits in the outbox (wake the chain tick)


def contributor(session: Session, principal: Principal, address: str) -> Provider:
    """The signed-in wallet's provider record, if `address` names that wallet: 422
    INVALID_FIELD for a malformed address, 403 ADDRESS_MISMATCH for another one."""
    try:
        named = parse_address(address)
    except InvalidAddressError as exc:
        raise InvalidField(
            f"contributorAddress: {exc}", details={"field": "contributorAddress"}
        ) from None
    provider = service.require_provider(session, principal)
    if named.lower() != provider.address.lower():
        raise AddressMismatch(
            "contributorAddress is not the signed-in wallet's address",
            details={"contributorAddress": named, "signed_in": provider.address},
        )
    return provider


def seed000_job(session: Session, raw_id: str | int) -> Job:
    return DatasetService.get_job(session, str(raw_id), job_type=JOB_TYPE)


def apply(
    session: Session, settings: NodeSettings, chain: Any, provider: Provider, raw_id: str | int
) -> Applied:
    """Lease the chosen job to `provider` and queue its on-chain assignment."""
    job = seed000_job(session, raw_id)
    got = service.claim_job(session, settings, provider, job.id)
    queued = enqueue_assignment(session, chain, got.job, provider.address, got.attempt)
    voucher = assignment_voucher(session, chain, got.job, provider.address, got.attempt)
    return Applied(job=got.job, voucher=voucher, queued=queued)


def _attempt(job: Job, attempt: int | None) -> int:
    return job.attempt if attempt is None else attempt


def start(
    session: Session,
    settings: NodeSettings,
    provider: Provider,
    raw_id: str | int,
    attempt: int | None,
) -> Job:
    """TrainChain's apply `confirm`: the lease holder starts the job."""
    job = seed000_job(session, raw_id)
    return service.start(session, settings, provider, job.id, _attempt(job, attempt))


def release(session: Session, provider: Provider, raw_id: str | int, attempt: int | None) -> Job:
    """TrainChain's apply `revert`: the lease holder hands the job back (pending)."""
    job = seed000_job(session, raw_id)
    return service.release(
        session, provider, job.id, _attempt(job, attempt), "reverted by the contributor"
    )


def check_holder(
    session: Session, provider: Provider, raw_id: str | int, attempt: int | None
) -> tuple[Job, int]:
    """The job and the attempt `provider` holds its live lease at (409 otherwise):
    checked before an upload stores anything."""
    job = seed000_job(session, raw_id)
    held = _attempt(job, attempt)
    return service.leased_job(session, provider, job.id, held), held


def _metrics(root: Path) -> dict[str, Any]:
    path = root / METRICS_FILE
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class StoredModel:
    cid: str
    metrics: dict[str, Any]
    new_pin: bool  # pinned by this upload (released again if recording it fails)


def store_model(store: ContentStore, received: ReceivedUpload) -> StoredModel:
    """Add the uploaded model files as one pinned directory (the daemon's Kubo `add`)."""
    if received.archives:  # a .zip model part is a file of the result, not an archive
        for name, path in received.archives:
            target = received.tree / Path(name).name
            path.replace(target)
    if not any(received.tree.iterdir()):
        raise InvalidField(
            "no model files were uploaded in the 'files' field", details={"field": "files"}
        )
    with store.hold():  # the collector cannot take what was added until it is pinned
        cid = store.add_path(received.tree, pin=False)
        new_pin = not store.is_pinned(cid)
        if new_pin:
            store.pin(cid)
    return StoredModel(cid=cid, metrics=_metrics(received.tree), new_pin=new_pin)


def release_model(store: ContentStore, stored: StoredModel) -> None:
    """Unpin a model this upload pinned, when recording it failed (another job's result
    with the same bytes keeps its pin)."""
    if stored.new_pin:
        try:
            store.unpin(stored.cid)
        except Exception:  # cleanup must not hide the original error
            log.exception("could not unpin %s after a refused model upload", stored.cid)


def submit_model(
    session: Session,
    settings: NodeSettings,
    chain: Any,
    provider: Provider,
    job_id: int,
    attempt: int,
    stored: StoredModel,
) -> tuple[Job, dict[str, Any] | None]:
    """Record the stored model under the lease (as the daemon's result report does) and
    return the job with the wallet call that sends its digest on chain (None for a job
    without escrow)."""
    result_cid = stored.cid
    job = service.submit_result(
        session, settings, provider, job_id, attempt, result_cid, stored.metrics, RESULT_TYPE
    )
    voucher = assignment_voucher(session, chain, job, provider.address, attempt)
    if voucher is None:
        return job, None
    escrow = chain.escrow()
    args = [
        bytes.fromhex(voucher["job_key"][2:]),
        voucher["attempt"],
        voucher["funding"],
        voucher["expiry"],
        voucher["v"],
        bytes.fromhex(voucher["r"][2:]),
        bytes.fromhex(voucher["s"][2:]),
        cid_digest(result_cid),
    ]
    call = {
        "chain_id": chain.chain_id,
        "to": escrow.address,
        "data": escrow.contract.encode_abi("submitWithVoucher", args=args),
        "value": "0",
    }
    return job, call


def current_job(session: Session, address: str) -> Job | None:
    """The job whose live lease `address` holds (the oldest first, if several)."""
    jobs = datasets_repository.jobs_of_contributor(
        session,
        job_type=JOB_TYPE,
        address=query_address(address, "contributorAddress"),
        statuses=[s.value for s in ACTIVE],
        limit=HISTORY_LIMIT,
    )
    return jobs[-1] if jobs else None


def history(session: Session, address: str) -> list[tuple[Job, list[dict[str, Any]]]]:
    """Every job `address` holds or last held the lease of, newest first, each with the
    escrow's settlements that paid `address` for it."""
    checked = query_address(address, "contributorAddress")
    jobs = datasets_repository.jobs_of_contributor(
        session, job_type=JOB_TYPE, address=checked, statuses=None, limit=HISTORY_LIMIT
    )
    paid: dict[str, list[dict[str, Any]]] = {}
    for row in list_payouts(session, provider=checked, limit=HISTORY_LIMIT):
        if row["recipient"] == to_checksum_address(checked) and row["job_id"]:
            paid.setdefault(row["job_id"], []).append(row)
    return [(job, paid.get(f"job_{job.id}", [])) for job in jobs]
