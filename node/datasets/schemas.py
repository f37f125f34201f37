"""Wire shapes of seed 000 (`/jobs/...`): the job detail object, field for field.

Formats, as the original Express + PostgreSQL app rendered them:
- `id` and `job_id` integers; `epochs`, `num_classes` integers; `imgsz` a string;
- `classes` the names joined by ", " (`"dog, cat"`);
- `created_at` ISO 8601 in UTC with milliseconds and `Z` (`2025-02-14T04:36:47.332Z`);
- `reward` decimal ETH with 6 decimals (`"500.000000"`, Postgres `numeric(_, 6)`).
  Wei precision is never dropped: a reward with more than 6 significant decimals is
  rendered with as many as it needs, up to 18 (`"0.1234567"`), instead of rounding.

After training, as TrainChain's job row does: `model_cid` (the result's CID, null until a
result is submitted) and `contributor_address` (the provider holding or last holding the
job's lease, null while nobody does). `status` is TrainChain's word for the state and
`dcm_status` the canonical one (`marketplace.jobs.dialects.TRAINCHAIN_WORD`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from marketplace.jobs.dialects import trainchain_word
from marketplace.money import wei_to_eth
from node.models.jobs import Job

REWARD_DECIMALS = 6
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"


def iso_millis(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class ImageJobOut(BaseModel):
    """The seed's job detail object (also each item of `GET /jobs/get-jobs`)."""

    model_config = ConfigDict(extra="forbid")

    id: int
    job_id: int
    model: str | None
    epochs: int | None
    imgsz: str | None
    export_format: str | None
    num_classes: int | None
    classes: str | None
    job_type: str
    requester_address: str | None
    folder_cid: str | None
    metadata_cid: str | None
    reward: str
    status: str
    created_at: str
    dcm_status: str
    model_cid: str | None = None
    contributor_address: str | None = None

    @classmethod
    def from_job(cls, job: Job) -> ImageJobOut:
        spec: dict[str, Any] = job.spec or {}
        classes = spec.get("classes")
        imgsz = spec.get("imgsz")
        return cls(
            id=job.id,
            job_id=job.id,
            model=spec.get("model"),
            epochs=spec.get("epochs"),
            imgsz=None if imgsz is None else str(imgsz),
            export_format=spec.get("export_format"),
            num_classes=spec.get("num_classes"),
            classes=", ".join(classes) if isinstance(classes, list) else classes,
            job_type=job.job_type,
            requester_address=job.requester_address,
            folder_cid=job.folder_cid,
            metadata_cid=job.metadata_cid,
            reward=wei_to_eth(job.reward_wei, REWARD_DECIMALS),
            status=trainchain_word(job.status),
            created_at=iso_millis(job.created_at) or "",
            dcm_status=job.status,
            model_cid=job.result_cid,
            contributor_address=job.lease_holder,
        )


class FundingCall(BaseModel):
    """What the requester's wallet signs to deposit the reward (value: wei, decimal)."""

    chain_id: int
    to: str
    data: str
    value: str


class ImageJobDetailOut(ImageJobOut):
    """The detail object (upload response, get-job) plus, while the job awaits its escrow
    deposit, the `funding` call to sign (null otherwise). The list items of `get-jobs`
    and `my-requests` are the job object without it."""

    funding: FundingCall | None = None

    @classmethod
    def with_funding(cls, job: Job, funding: dict[str, Any] | None) -> ImageJobDetailOut:
        base = ImageJobOut.from_job(job).model_dump()
        return cls(**base, funding=FundingCall(**funding) if funding else None)


class UploadOut(BaseModel):
    message: str = "Job uploaded successfully"
    job: ImageJobDetailOut


class JobMessageOut(BaseModel):
    """TrainChain's `{message, job}` answer."""

    message: str
    job: ImageJobDetailOut


class RetryInfoOut(BaseModel):
    """What the requester's wallet signs for an unfunded job: the escrow deposit
    (`funding`), or, to give the job up instead, the `delete_message` to personal_sign."""

    message: str = "Sign the funding call to fund the job, or the delete message to delete it"
    job: ImageJobDetailOut
    funding: FundingCall
    delete_message: str


class DeleteJobIn(BaseModel):
    """The requester's proof for `DELETE /jobs/delete/:jobId`: its address and an EIP-191
    signature of the job's `delete_message` (from `GET /jobs/retry-info/:jobId`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    requester_address: str = Field(alias="requesterAddress", pattern=ADDRESS_PATTERN)
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")
