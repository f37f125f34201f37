"""Container jobs (job type `container`): the seed 003 create body, checked and normalized
into the job's `spec`, the one shape the provider's Docker executor reads.

`spec` keys (snake_case, the contract with `worker/executors`): image, command, args,
env, cpu_millicores, memory_bytes, storage_bytes, duration_seconds, ports
[{port, expose}], volumes [{name, mount_path, size_bytes}], gpus, inputs [{cid, path}],
pool (the provider network, seed 003's `provider`).

Every limit below is a 400 VALIDATION_ERROR naming the field on `/api/plugin-core`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from marketplace.content.cid import parse_cid
from marketplace.content.errors import InvalidCid
from marketplace.jobs.networks import DEFAULT_NETWORK, network_name
from marketplace.money import InvalidAmount, eth_to_wei
from marketplace.units import format_bytes, parse_bytes

CONTAINER = "container"

MIB = 1024 * 1024
MIN_MEMORY = 6 * MIB  # Docker refuses a memory limit below 6 MiB
MAX_MEMORY = 4 * 1024**4
MAX_STORAGE = 100 * 1024**4
MAX_CPU_MILLICORES = 1024 * 1000
MAX_DURATION_SECONDS = 30 * 24 * 3600
MAX_ENV = 256
MAX_ENV_BYTES = 64 * 1024
MAX_GPUS = 64

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,255}$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,511}$")
_MOUNT = re.compile(r"^/[A-Za-z0-9._/-]{0,510}$")
Arg = Annotated[str, StringConstraints(max_length=4096)]


class PortSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: StrictInt = Field(ge=1, le=65535)
    expose: StrictBool = False


class VolumeSpec(BaseModel):
    """A scratch volume the container gets (seed 003 names none; Akash's SDL: a name, a
    mount path and a size)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    mount_path: str = Field(alias="mountPath", max_length=512)
    size: str = Field("1Gi", max_length=32)

    @field_validator("mount_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not _MOUNT.fullmatch(value) or ".." in value.split("/") or value == "/":
            raise ValueError("an absolute path inside the container, not / and without ..")
        return value

    @field_validator("size")
    @classmethod
    def _size(cls, value: str) -> str:
        if not 0 < parse_bytes(value) <= MAX_STORAGE:
            raise ValueError("a size between 1 byte and 100Ti")
        return value


class InputSpec(BaseModel):
    """Content fetched from the node's IPFS and mounted read-only (default `/inputs`)."""

    model_config = ConfigDict(extra="forbid")

    cid: str = Field(max_length=128)
    path: str = Field("/inputs", max_length=512)

    @field_validator("cid")
    @classmethod
    def _cid(cls, value: str) -> str:
        try:
            parse_cid(value)
        except (InvalidCid, ValueError) as exc:
            raise ValueError(f"not a CID: {exc}") from None
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return VolumeSpec._absolute(value)


def _distinct_mounts(paths: list[str]) -> None:
    if "/outputs" in paths:
        raise ValueError("/outputs is where the job's results are written; mount elsewhere")
    if len(set(paths)) != len(paths):
        raise ValueError("each mount path once (volumes and inputs together)")


class ContainerJobCreate(BaseModel):
    """Seed 003's create body (plus `gpus`, `inputs` and `reward`, ours)."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(description="Provider network (akash, render, golem, default...)")
    image: str = Field(description="Docker image (`nginx:alpine`) or `ipfs://<cid>`")
    cpu: StrictInt = Field(ge=1, le=MAX_CPU_MILLICORES, description="CPU millicores")
    memory: str = Field(max_length=32, description="Memory with units (512Mi, 2Gi)")
    storage: str = Field(max_length=32, description="Storage with units (1Gi, 100Gi)")
    duration: StrictInt = Field(ge=1, le=MAX_DURATION_SECONDS, description="Max runtime (s)")
    env: dict[str, Annotated[str, StringConstraints(max_length=32768)]] = Field(
        default_factory=dict, max_length=MAX_ENV
    )
    ports: list[PortSpec] = Field(default_factory=list, max_length=32)
    volumes: list[VolumeSpec] = Field(default_factory=list, max_length=16)
    command: list[Arg] | None = Field(None, max_length=64)
    args: list[Arg] = Field(default_factory=list, max_length=256)
    gpus: StrictInt = Field(0, ge=0, le=MAX_GPUS, description="GPUs (ours)")
    inputs: list[InputSpec] = Field(default_factory=list, max_length=32)
    reward: str | int | float | None = Field(
        None, description="Escrowed reward in ETH (ours): the job goes to the open market"
    )

    @field_validator("provider")
    @classmethod
    def _network(cls, value: str) -> str:
        return network_name(value)

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if value.startswith("ipfs://"):
            try:
                parse_cid(value.removeprefix("ipfs://"))
            except (InvalidCid, ValueError) as exc:
                raise ValueError(f"ipfs://<cid> with a valid CID: {exc}") from None
            return value
        if not _IMAGE.fullmatch(value):
            raise ValueError("an image reference such as nginx:alpine, or ipfs://<cid>")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        n = parse_bytes(value)
        if not MIN_MEMORY <= n <= MAX_MEMORY:
            raise ValueError(f"between 6Mi and 4Ti, got {value}")
        return value

    @field_validator("storage")
    @classmethod
    def _storage(cls, value: str) -> str:
        n = parse_bytes(value)
        if not MIB <= n <= MAX_STORAGE:
            raise ValueError(f"between 1Mi and 100Ti, got {value}")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not _ENV_NAME.fullmatch(k)]
        if bad:
            raise ValueError(f"not an environment variable name: {bad[0][:64]!r}")
        if sum(len(k) + len(v) for k, v in value.items()) > MAX_ENV_BYTES:
            raise ValueError(f"more than {MAX_ENV_BYTES} bytes of environment")
        return value

    @field_validator("ports")
    @classmethod
    def _ports(cls, value: list[PortSpec]) -> list[PortSpec]:
        if len({p.port for p in value}) != len(value):
            raise ValueError("a port is listed twice")
        return value

    @field_validator("reward", mode="before")
    @classmethod
    def _reward(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError('an ETH amount such as "0.1"')
        try:
            # a JSON number arrives as a float: its shortest repr is what was written
            wei = eth_to_wei(Decimal(repr(value)) if isinstance(value, float) else value)
        except (InvalidAmount, ArithmeticError) as exc:
            raise ValueError(str(exc)) from None
        return str(wei)  # kept in wei from here on

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, value: list[VolumeSpec]) -> list[VolumeSpec]:
        _distinct_mounts([v.mount_path for v in value])
        return value

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: list[InputSpec], info: ValidationInfo) -> list[InputSpec]:
        volumes = info.data.get("volumes") or []
        _distinct_mounts([v.mount_path for v in volumes] + [i.path for i in value])
        return value

    @property
    def reward_wei(self) -> int:
        return int(self.reward) if self.reward is not None else 0

    def spec(self) -> dict[str, Any]:
        """The job's `spec` (see the module's docstring)."""
        return {
            "image": self.image,
            "command": list(self.command) if self.command is not None else None,
            "args": list(self.args),
            "env": dict(self.env),
            "cpu_millicores": self.cpu,
            "memory_bytes": parse_bytes(self.memory),
            "storage_bytes": parse_bytes(self.storage),
            "duration_seconds": self.duration,
            "ports": [p.model_dump() for p in self.ports],
            "volumes": [
                {"name": v.name, "mount_path": v.mount_path, "size_bytes": parse_bytes(v.size)}
                for v in self.volumes
            ],
            "gpus": self.gpus,
            "inputs": [i.model_dump() for i in self.inputs],
            "pool": self.provider,
        }


def body_of_spec(spec: dict[str, Any], reward_wei: int) -> dict[str, Any]:
    """The create body a spec was made from (templates store bodies; this is the way back,
    for display)."""
    body: dict[str, Any] = {
        "provider": spec.get("pool") or DEFAULT_NETWORK,
        "image": spec.get("image"),
        "cpu": spec.get("cpu_millicores"),
        "memory": format_bytes(int(spec.get("memory_bytes") or 0)),
        "storage": format_bytes(int(spec.get("storage_bytes") or 0)),
        "duration": spec.get("duration_seconds"),
    }
    return body


# Both reasons start with this (a claim clears a stored one, `node.providers.service`).
NO_NETWORK = "No registered provider serves "


def waiting_reason(network: str, served: set[str], job_type_served: bool) -> str | None:
    """Why a pending job of `network` is not being claimed, if the registry says so."""
    if network not in served:
        return (
            f"{NO_NETWORK}the network {network!r}: the job stays pending until one does "
            f"(networks served: {', '.join(sorted(served)) or 'none'})"
        )
    if not job_type_served:
        return f"{NO_NETWORK}container jobs on the network {network!r} yet"
    return None
