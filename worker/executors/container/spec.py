"""A container job's parameters as the provider reads them from `JobSpec.spec`.

The node stores what the requester asked for in snake_case (whichever dialect carried it);
this is the provider's own parse of it, strict about what would be unsafe to pass to the
engine (paths, environment names) and lenient about keys it does not use (the node may add
some). A spec it cannot run is the job's fault: `ValidationFailed`, no retry.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from marketplace.errors import ValidationFailed

# Where the container finds its inputs and leaves its results.
INPUTS_PATH = "/inputs"
OUTPUTS_PATH = "/outputs"
SCRATCH_PATH = "/tmp"

# Paths a job may not mount over: they would hide what the engine itself provides.
_RESERVED = ("/", "/proc", "/sys", "/dev", "/etc", OUTPUTS_PATH)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def _mount_path(value: str) -> str:
    if not value.startswith("/") or "\0" in value or "," in value or ":" in value:
        raise ValueError(f"{value!r} is not an absolute container path")
    norm = posixpath.normpath(value)
    if ".." in value.split("/") or norm in _RESERVED:
        raise ValueError(f"{value!r} cannot be mounted over")
    if norm.startswith(OUTPUTS_PATH + "/"):
        raise ValueError(f"{value!r} is inside {OUTPUTS_PATH}")
    return norm


class PortSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    port: int = Field(ge=1, le=65535)
    expose: bool = False


class VolumeSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=64)
    mount_path: str
    size_bytes: int = Field(gt=0)

    _path = field_validator("mount_path")(_mount_path)


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    cid: str = Field(min_length=46, max_length=128, pattern="^[A-Za-z0-9]+$")
    path: str | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else _mount_path(value)


class ContainerJob(BaseModel):
    """One container job. Zero for `cpu_millicores`, `memory_bytes` or `storage_bytes` means
    "not asked": the executor then applies the provider's defaults (never no limit)."""

    model_config = ConfigDict(extra="ignore")

    image: str = Field(min_length=1, max_length=512)
    command: list[str] | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cpu_millicores: int = Field(0, ge=0)
    memory_bytes: int = Field(0, ge=0)
    storage_bytes: int = Field(0, ge=0)
    duration_seconds: int = Field(0, ge=0)
    ports: list[PortSpec] = Field(default_factory=list)
    volumes: list[VolumeSpec] = Field(default_factory=list)
    gpus: int = Field(0, ge=0)
    inputs: list[InputSpec] = Field(default_factory=list)
    pool: str = "default"

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return value

    @property
    def ipfs_image(self) -> str | None:
        """The CID of a `docker save` archive for `ipfs://<cid>` images, else None."""
        return self.image[len("ipfs://") :] if self.image.startswith("ipfs://") else None

    @property
    def exposed_ports(self) -> list[int]:
        return sorted({p.port for p in self.ports if p.expose})

    def input_mounts(self) -> list[tuple[str, str]]:
        """(cid, container path) per input: an input without a path goes to `/inputs`
        when it is the only one, else to `/inputs/<cid>`."""
        out = []
        for item in self.inputs:
            if item.path is not None:
                path = item.path
            elif len(self.inputs) == 1:
                path = INPUTS_PATH
            else:
                path = f"{INPUTS_PATH}/{item.cid}"
            out.append((item.cid, path))
        paths = [p for _, p in out] + [v.mount_path for v in self.volumes]
        if len(set(paths)) != len(paths):
            raise ValidationFailed("two inputs or volumes are mounted at the same path")
        return out


def parse_container_job(spec: Mapping[str, Any]) -> ContainerJob:
    """Read a container job's spec; `ValidationFailed` (with the field) when it is unusable."""
    try:
        job = ContainerJob.model_validate(dict(spec))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise ValidationFailed(
            f"container spec: {where}: {first.get('msg')}", details={"field": where}
        ) from None
    if job.ipfs_image is not None and not re.fullmatch(r"[A-Za-z0-9]{46,128}", job.ipfs_image):
        raise ValidationFailed(f"container spec: image {job.image!r} names no CID")
    job.input_mounts()  # refuses clashing mount paths now, before anything is fetched
    return job
