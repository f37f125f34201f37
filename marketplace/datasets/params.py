"""The parameters of an image-processing job as seed 000 sends them (form fields, all
strings) and their checks: EIP-55 addresses, decimal-ETH rewards, and the training
parameters (model, epochs, imgsz, classes, export format), which go through the one
training-spec parser, `marketplace.training.TrainingSpec.from_mapping`, and its limits.

Decisions where the seed is silent:
- `numClasses` and `classes` are both required and must agree.
- `reward` is a decimal amount of ETH as a person types it (`marketplace.money.parse_eth`),
  > 0, at most 18 decimals.
- `requesterAddress`: mixed case must carry a valid EIP-55 checksum; all-lowercase (or
  all-uppercase) hex is accepted and stored checksummed.
- Unknown, repeated or missing fields are refused (422 `INVALID_FIELD`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from marketplace import addresses
from marketplace.datasets.errors import InvalidAddress, InvalidReward
from marketplace.errors import InvalidField
from marketplace.money import InvalidAmount, parse_eth, wei_to_eth
from marketplace.training import ModelChoice, TrainingSpec, resolve_model

FIELDS = (
    "folderName",
    "model",
    "epochs",
    "imgsz",
    "exportFormat",
    "numClasses",
    "classes",
    "reward",
    "requesterAddress",
)
TRAINING_FIELDS = ("model", "epochs", "imgsz", "exportFormat", "numClasses", "classes")
MAX_FOLDER_NAME = 255

_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class JobParams:
    """Validated, normalised parameters of one upload."""

    folder_name: str
    model: str  # as the requester wrote it (trimmed), shown back by get-job
    model_spec: ModelChoice
    training: TrainingSpec
    reward_wei: int
    requester_address: str  # EIP-55 checksummed

    @property
    def epochs(self) -> int:
        return self.training.epochs

    @property
    def imgsz(self) -> int:
        return self.training.imgsz

    @property
    def export_format(self) -> str:
        return self.training.export_format

    @property
    def classes(self) -> tuple[str, ...]:
        return self.training.classes or ()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def reward(self) -> str:
        return wei_to_eth(self.reward_wei)

    def metadata(self, folder_cid: str) -> dict[str, Any]:
        """The metadata document pinned as `metadata_cid` (seed field names)."""
        return {
            "folderName": self.folder_name,
            "model": self.model,
            "epochs": self.epochs,
            "imgsz": str(self.imgsz),
            "exportFormat": self.export_format,
            "numClasses": self.num_classes,
            "classes": list(self.classes),
            "reward": self.reward,
            "requesterAddress": self.requester_address,
            "folder_cid": folder_cid,
        }

    def spec(self) -> dict[str, Any]:
        """The executor settings stored on the job row (read back by
        `TrainingSpec.from_mapping` on the provider)."""
        return {
            "folder_name": self.folder_name,
            "model": self.model,
            "weights": self.model_spec.weights_file,
            "task": self.model_spec.task,
            "epochs": self.epochs,
            "imgsz": self.imgsz,
            "export_format": self.export_format,
            "num_classes": self.num_classes,
            "classes": list(self.classes),
            "reward": self.reward,
        }


def canonical_json(doc: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UTF-8."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def parse_address(raw: str) -> str:
    """Return the EIP-55 form of `raw`; `InvalidAddress` (422) if it is not a usable
    address (`marketplace.addresses`: malformed, bad checksum, or the zero address)."""
    value = (raw or "").strip()
    try:
        return addresses.parse_address(value)
    except addresses.InvalidAddressError as exc:
        raise InvalidAddress(
            f"requesterAddress: {exc}", details={"requesterAddress": value[:64]}
        ) from exc


def parse_reward(raw: str) -> int:
    """Decimal ETH string -> wei; `InvalidReward` (422) unless > 0 with <= 18 decimals."""
    value = (raw or "").strip()
    try:
        wei = parse_eth(value)
    except InvalidAmount as exc:
        raise InvalidReward(
            f"reward must be a positive decimal amount of ETH, e.g. 0.5 ({exc})",
            details={"reward": value[:64]},
        ) from exc
    if wei <= 0:
        raise InvalidReward("reward must be greater than 0", details={"reward": value})
    return wei


def parse_folder_name(raw: str) -> str:
    value = (raw or "").strip()
    if not value or len(value) > MAX_FOLDER_NAME or _CONTROL.search(value):
        raise InvalidField(
            "folderName must be 1-255 printable characters", details={"field": "folderName"}
        )
    return value


def parse_job_params(fields: dict[str, str]) -> JobParams:
    """Check every seed-000 form field; raise the first problem found (422)."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise InvalidField(
            f"Unknown form fields: {', '.join(unknown)}",
            details={"unknown": unknown, "expected": list(FIELDS)},
        )
    missing = [name for name in FIELDS if not (fields.get(name) or "").strip()]
    if missing:
        raise InvalidField(
            f"Missing form fields: {', '.join(missing)}", details={"missing": missing}
        )
    model_raw = fields["model"].strip()
    training = TrainingSpec.from_mapping({name: fields[name] for name in TRAINING_FIELDS})
    return JobParams(
        folder_name=parse_folder_name(fields["folderName"]),
        model=model_raw,
        model_spec=resolve_model(model_raw),
        training=training,
        reward_wei=parse_reward(fields["reward"]),
        requester_address=parse_address(fields["requesterAddress"]),
    )
