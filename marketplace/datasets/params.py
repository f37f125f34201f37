"""The parameters of an image-processing job as seed 000 sends them (form fields, all
strings) and their checks: EIP-55 addresses, decimal-ETH rewards, epochs, image size,
classes, model and export format.

Decisions where the seed is silent:
- `epochs` 1..10000; `imgsz` 32..4096 and a multiple of 32 (YOLO strides; Ultralytics
  would silently round otherwise); `numClasses` 1..10000 and equal to `len(classes)`.
- `classes` is a JSON array of strings or a comma-separated string; names are trimmed,
  non-empty, unique, at most 128 characters, without `/`, `\\`, `,` or control characters
  (they become folder names for classification and are rendered joined by ", ").
- `reward` is a plain decimal (no exponent) in ETH, > 0, at most 18 decimals.
- `requesterAddress`: mixed case must carry a valid EIP-55 checksum; all-lowercase (or
  all-uppercase) hex is accepted and stored checksummed.
- Unknown, repeated or missing fields are refused (422 `INVALID_FIELD`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from eth_utils import is_checksum_address, to_checksum_address

from marketplace.datasets.errors import InvalidAddress, InvalidField, InvalidReward
from marketplace.training import ModelChoice, normalize_export_format, resolve_model

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
EPOCHS_RANGE = (1, 10_000)
IMGSZ_RANGE = (32, 4096)
IMGSZ_STRIDE = 32
NUM_CLASSES_RANGE = (1, 10_000)
MAX_CLASS_NAME = 128
MAX_FOLDER_NAME = 255
WEI_PER_ETH = 10**18
MAX_WEI = 2**256 - 1

_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_DECIMAL = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)$")
_INT = re.compile(r"^[+]?\d{1,12}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class JobParams:
    """Validated, normalised parameters of one upload."""

    folder_name: str
    model: str  # as the requester wrote it (trimmed), shown back by get-job
    model_spec: ModelChoice
    epochs: int
    imgsz: int
    export_format: str
    num_classes: int
    classes: tuple[str, ...]
    reward_wei: int
    requester_address: str  # EIP-55 checksummed

    @property
    def reward(self) -> str:
        return format_eth(self.reward_wei)

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
        """The executor settings stored on the job row."""
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
    """Return the EIP-55 form of `raw`; `InvalidAddress` (422) if it is not one."""
    value = (raw or "").strip()
    if not _HEX_ADDRESS.match(value):
        raise InvalidAddress(
            "requesterAddress must be a 0x-prefixed 20-byte hex address",
            details={"requesterAddress": value[:64]},
        )
    body = value[2:]
    if body == body.lower() or body == body.upper():
        return to_checksum_address(value)
    if not is_checksum_address(value):
        raise InvalidAddress(
            "requesterAddress has an invalid EIP-55 checksum",
            details={"requesterAddress": value},
        )
    return value


def parse_reward(raw: str) -> int:
    """Decimal ETH string -> wei; `InvalidReward` (422) unless > 0 with <= 18 decimals."""
    value = (raw or "").strip()
    if not _DECIMAL.match(value) or len(value) > 100:
        raise InvalidReward(
            "reward must be a positive decimal amount of ETH, e.g. 0.5",
            details={"reward": value[:64]},
        )
    whole, _, frac = value.partition(".")
    if len(frac.rstrip("0")) > 18:
        raise InvalidReward(
            "reward has more than 18 decimals (below 1 wei)", details={"reward": value}
        )
    try:
        wei = int(Decimal(value) * WEI_PER_ETH)
    except InvalidOperation as exc:  # pragma: no cover - the regex excludes it
        raise InvalidReward("reward is not a number", details={"reward": value}) from exc
    if wei <= 0:
        raise InvalidReward("reward must be greater than 0", details={"reward": value})
    if wei > MAX_WEI:
        raise InvalidReward("reward is larger than a uint256 of wei", details={"reward": value})
    return wei


def format_eth(wei: int, min_decimals: int = 0) -> str:
    """Exact decimal ETH of `wei`: trailing zeros trimmed but at least `min_decimals`."""
    whole, frac = divmod(int(wei), WEI_PER_ETH)
    digits = f"{frac:018d}".rstrip("0")
    if len(digits) < min_decimals:
        digits = digits.ljust(min_decimals, "0")
    return f"{whole}.{digits}" if digits else str(whole)


def parse_int(name: str, raw: str, lo: int, hi: int) -> int:
    value = (raw or "").strip()
    if not _INT.match(value):
        raise InvalidField(
            f"{name} must be an integer", details={"field": name, "value": value[:32]}
        )
    number = int(value)
    if not lo <= number <= hi:
        raise InvalidField(
            f"{name} must be between {lo} and {hi}",
            details={"field": name, "value": number, "min": lo, "max": hi},
        )
    return number


def parse_imgsz(raw: str) -> int:
    number = parse_int("imgsz", raw, *IMGSZ_RANGE)
    if number % IMGSZ_STRIDE:
        raise InvalidField(
            f"imgsz must be a multiple of {IMGSZ_STRIDE}",
            details={"field": "imgsz", "value": number},
        )
    return number


def parse_classes(raw: str) -> tuple[str, ...]:
    """A JSON array of names or a comma-separated string -> checked tuple of names."""
    value = (raw or "").strip()
    names: list[Any]
    if value.startswith("["):
        try:
            names = json.loads(value)
        except json.JSONDecodeError as exc:
            raise InvalidField(
                "classes is not a valid JSON array", details={"field": "classes"}
            ) from exc
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InvalidField(
                "classes must be a JSON array of strings", details={"field": "classes"}
            )
    else:
        names = value.split(",") if value else []
    cleaned = tuple(n.strip() for n in names)
    if not cleaned:
        raise InvalidField("classes must name at least one class", details={"field": "classes"})
    for name in cleaned:
        bad = (
            not name
            or len(name) > MAX_CLASS_NAME
            or name in (".", "..")
            or any(ch in name for ch in "/\\,")
            or _CONTROL.search(name)
        )
        if bad:
            raise InvalidField(
                "class names must be 1-128 characters without '/', '\\\\', ',' or control "
                "characters",
                details={"field": "classes", "value": name[:MAX_CLASS_NAME]},
            )
    if len(set(cleaned)) != len(cleaned):
        raise InvalidField("classes contains duplicate names", details={"field": "classes"})
    return cleaned


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
    model_spec = resolve_model(model_raw)
    export_format = normalize_export_format(fields["exportFormat"])
    epochs = parse_int("epochs", fields["epochs"], *EPOCHS_RANGE)
    imgsz = parse_imgsz(fields["imgsz"])
    num_classes = parse_int("numClasses", fields["numClasses"], *NUM_CLASSES_RANGE)
    classes = parse_classes(fields["classes"])
    if len(classes) != num_classes:
        raise InvalidField(
            f"numClasses is {num_classes} but classes names {len(classes)}",
            details={"field": "numClasses", "numClasses": num_classes, "classes": len(classes)},
        )
    return JobParams(
        folder_name=parse_folder_name(fields["folderName"]),
        model=model_raw,
        model_spec=model_spec,
        epochs=epochs,
        imgsz=imgsz,
        export_format=export_format,
        num_classes=num_classes,
        classes=classes,
        reward_wei=parse_reward(fields["reward"]),
        requester_address=parse_address(fields["requesterAddress"]),
    )
