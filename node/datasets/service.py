"""Rules of seed 000: turn a received upload into a pinned dataset and a job, list the
jobs open to providers, and serve a dataset back as a deterministic zip.

Nothing half-written: every check (form fields, archive safety, YOLO layout, image
headers, labels) runs on the staged upload before the content store sees a byte. The
files were imported as they arrived (`marketplace.datasets.staged`: chunked, hashed,
their blocks staged in the upload's folder; a zip's entries are imported as the archive
streams in, never written to disk or extracted: `marketplace.datasets.archive_stream`);
the checks read that listing, and an accepted dataset's
blocks are then handed to the store (`add_staged`: a rename each, for the embedded
store), so its bytes are written once and hashed once. The
layout is detected here, once, and stored in the job's spec (`spec["dataset"]`, a
`marketplace.datasets.layout.DatasetSummary`) for the provider to train from. Only
then is the folder added (`folder_cid`) and the metadata JSON (`metadata_cid`), and the
job row inserted. If a step after the first add fails, the pins this upload created are
removed again (a CID that was already pinned, e.g. the same dataset uploaded before, is
left pinned); the unpinned blocks are then garbage for the store's collector. The
staging folder is always removed by the caller.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sqlalchemy.orm import Session

from marketplace.addresses import InvalidAddressError, parse_address
from marketplace.content.errors import ContentNotFound
from marketplace.content.store import ContentStore
from marketplace.datasets.errors import DatasetNotFound, InvalidDataset
from marketplace.datasets.layout import dataset_root, validate_dataset
from marketplace.datasets.params import canonical_json, parse_job_params
from marketplace.datasets.staged import StagedDataset, StagedPath
from marketplace.datasets.zipstream import StreamingZip, store_members
from marketplace.errors import BadQuery, InvalidField, JobNotFound, ModelNotFound
from marketplace.jobs.ids import parse_job_id
from marketplace.jobs.states import OPEN_TO_PROVIDERS, JobStatus
from node.auth.principal import Principal
from node.authz.policy import is_open_market, may_read_inputs
from node.config import UploadLimits
from node.datasets import repository
from node.datasets.multipart import ReceivedUpload
from node.jobs.service import create_job
from node.models.jobs import Job

log = logging.getLogger("dcm.datasets")

JOB_TYPE = "image_processing"
# Funding gate: an uploaded job with a reward waits for its escrow deposit, invisible to
# providers; the chain watcher moves it to PENDING once the requester funded it, and the
# settlement policy expires unfunded jobs and releases their pins (node.escrow.policy).
# A job without a reward (not possible through seed 000's form) would be open at once.
UPLOAD_INITIAL_STATUS = JobStatus.AWAITING_FUNDING
OPEN_JOBS_LIMIT = 1000
MY_JOBS_LIMIT = 1000
# Staging folders older than this are left from a process killed mid-upload.
STALE_UPLOAD_SECONDS = 24 * 3600


def purge_stale_uploads(uploads_dir: Path, max_age_seconds: float = STALE_UPLOAD_SECONDS) -> int:
    """Remove staging folders a killed process left behind (each upload removes its own
    otherwise); return how many were removed."""
    if not uploads_dir.is_dir():
        return 0
    cutoff = time.time() - max_age_seconds
    removed = 0
    for child in uploads_dir.iterdir():
        try:
            if child.stat().st_mtime < cutoff:
                shutil.rmtree(child, ignore_errors=True)
                removed += 1
        except FileNotFoundError:  # another request removed it meanwhile
            continue
    return removed


class DatasetService:
    """Seed-000 operations over one content store (embedded or Kubo)."""

    def __init__(self, store: ContentStore, limits: UploadLimits) -> None:
        self.store = store
        self.limits = limits

    # -- upload -----------------------------------------------------------------------
    def stage(self, received: ReceivedUpload) -> StagedPath:
        """The dataset's root in what was staged as it arrived: the files, or the entries
        of the one `.zip` (`node.datasets.multipart`)."""
        staged = received.staged
        if staged is None:
            raise RuntimeError("dataset uploads are received with stage=True")
        if not received.file_count and received.archive_name is None:
            raise InvalidField(
                "no dataset files were uploaded in the 'files' field", details={"field": "files"}
            )
        if staged.is_empty():
            raise InvalidDataset("the upload holds no files")
        return dataset_root(staged.root)  # type: ignore[arg-type, return-value]

    def create_upload_job(self, session: Session, received: ReceivedUpload) -> Job:
        """Validate everything, then pin the dataset and its metadata and create the job."""
        params = parse_job_params(received.fields)
        root = self.stage(received)
        summary = validate_dataset(
            root,  # type: ignore[arg-type]
            task=params.model_spec.task,
            classes=params.classes,
        )
        staged: StagedDataset = root.dataset
        folder_cid = str(staged.import_dir(root.rel).cid)
        created_pins: list[str] = []
        try:
            # held: the collector cannot take what was added until it is pinned
            with self.store.hold():
                if not self.store.is_pinned(folder_cid):
                    self.store.add_staged(staged.blocks, folder_cid, pin=True)
                    created_pins.append(folder_cid)
                metadata = canonical_json(params.metadata(folder_cid))
                metadata_cid = self._add_and_pin(
                    lambda pin: self.store.add_bytes(metadata, pin=pin), created_pins
                )
            job = create_job(
                session,
                job_type=JOB_TYPE,
                status=UPLOAD_INITIAL_STATUS if params.reward_wei > 0 else JobStatus.PENDING,
                requester_address=params.requester_address,
                reward_wei=params.reward_wei,
                folder_cid=folder_cid,
                metadata_cid=metadata_cid,
                spec={**params.spec(), "dataset": summary.model_dump(mode="json")},
            )
        except BaseException:
            # Roll back first: on SQLite the store's own pin transaction would otherwise
            # wait on this request's uncommitted insert.
            session.rollback()
            self._release(created_pins)
            raise
        log.info(
            "dataset job %s: folder %s, %d files, %d bytes",
            job.id,
            folder_cid,
            summary.files,
            summary.bytes,
        )
        return job

    def _add_and_pin(self, add: Callable[[bool], str], created: list[str]) -> str:
        """Add, then pin unless already pinned; record pins this upload created so a
        failure can remove exactly those."""
        cid = add(False)
        if self.store.is_pinned(cid):
            return cid
        try:
            self.store.pin(cid)
        except ContentNotFound:
            # A garbage collection ran between the add and the pin: add again, pinned.
            cid = add(True)
        created.append(cid)
        return cid

    def _release(self, cids: list[str]) -> None:
        for cid in reversed(cids):
            try:
                self.store.unpin(cid)
            except Exception:  # cleanup must not hide the original error
                log.exception("could not unpin %s after a failed upload", cid)

    # -- reads ------------------------------------------------------------------------
    # Seed 000 takes no credentials, so it shows the open market only: a private job
    # (no escrow) is "not found" here, whatever its type.
    @staticmethod
    def get_job(session: Session, raw_id: str, *, job_type: str | None = None) -> Job:
        """An open-market job (of `job_type`, if given); 404 otherwise."""
        job = DatasetService._job(session, raw_id)
        if not is_open_market(job) or (job_type is not None and job.job_type != job_type):
            raise JobNotFound()
        return job

    @staticmethod
    def get_job_inputs(session: Session, principal: Principal | None, raw_id: str) -> Job:
        """A job whose dataset the caller may fetch: any open-market job; a private one
        for whoever may read it and for the admitted provider holding its lease. 404
        otherwise."""
        job = DatasetService._job(session, raw_id)
        if not may_read_inputs(session, principal, job):
            raise JobNotFound()
        return job

    @staticmethod
    def _job(session: Session, raw_id: str) -> Job:
        try:
            job_id = parse_job_id(raw_id)
        except JobNotFound:
            raise JobNotFound() from None  # seed 000 answers the plain "Job not found"
        job = repository.job_by_id(session, job_id)
        if job is None:
            raise JobNotFound()
        return job

    @staticmethod
    def open_jobs(session: Session, limit: int = OPEN_JOBS_LIMIT) -> Sequence[Job]:
        return repository.open_jobs(
            session,
            job_type=JOB_TYPE,
            statuses=[s.value for s in OPEN_TO_PROVIDERS],
            limit=limit,
        )

    def dataset_zip(self, job: Job) -> StreamingZip:
        """The job's dataset as a deterministic zip, read lazily from the store.

        Only the directory blocks are read here (to plan the archive and its length); file
        blocks are read, and verified, as the zip streams. A full `has()` walk first would
        read the whole dataset one extra time for a case (lost blocks) that should not
        happen; if it does, the stream aborts rather than send wrong bytes.
        """
        if not job.folder_cid:
            raise DatasetNotFound(f"No dataset stored for job {job.id}")
        try:
            members = store_members(self.store, job.folder_cid)
        except ContentNotFound as exc:
            raise DatasetNotFound(f"The dataset of job {job.id} is not in the store") from exc
        return StreamingZip(members)


def query_address(value: str, name: str) -> str:
    """A TrainChain query parameter that names a wallet, checksummed (400 INVALID_QUERY
    when it is not an address: `marketplace.addresses`)."""
    try:
        return parse_address(value)
    except InvalidAddressError as exc:
        raise BadQuery(f"`{name}`: {exc}", details={name: value}) from None


def requester_jobs(session: Session, address: str, limit: int = MY_JOBS_LIMIT) -> Sequence[Job]:
    """The seed 000 jobs `address` posted, newest first, whatever their state."""
    return repository.jobs_of_requester(
        session, job_type=JOB_TYPE, address=query_address(address, "requesterAddress"), limit=limit
    )


def model_zip(store: ContentStore, job: Job) -> StreamingZip:
    """The job's result directory (weights, exported model, metrics, training log) as a
    deterministic zip: 404 MODEL_NOT_FOUND until a result is submitted."""
    if not job.result_cid:
        raise ModelNotFound(f"Job {job.id} has no trained model yet (it is {job.status})")
    try:
        members = store_members(store, job.result_cid)
    except ContentNotFound as exc:
        raise ModelNotFound(f"The model of job {job.id} is not in the store") from exc
    return StreamingZip(members)
