"""The Docker engine as the provider sees it: how to reach it, what it offers, what this
provider left on it.

The engine is found the Docker way (`DOCKER_HOST`, else the default socket) through the
`docker` SDK. Every SDK or transport error is re-raised here as `EngineUnavailable` (a
failure of this provider's, so the loop hands the job back and checks itself) unless the
caller knows better (an image that does not exist is the job's fault).

Containers and networks are labelled `dcm.provider=<provider id>` and `dcm.job=<job id>`;
`remove_leftovers` removes what carries this provider's label, so a provider that was killed
cleans up after itself at its next start without touching other providers on the same engine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from typing import Any

LABEL_PROVIDER = "dcm.provider"
LABEL_JOB = "dcm.job"
LABEL_ATTEMPT = "dcm.attempt"


class EngineUnavailable(Exception):
    """The Docker engine did not answer, or answered with an error of its own."""


def connect(timeout: float = 60.0) -> Any:
    """A `docker.DockerClient` for the engine `DOCKER_HOST` names (or the default socket),
    checked with a ping. Raises `EngineUnavailable`."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise EngineUnavailable(f"the docker SDK is not installed: {exc}") from exc
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except (DockerException, OSError) as exc:
        where = os.environ.get("DOCKER_HOST") or "the default Docker socket"
        raise EngineUnavailable(f"no Docker engine answers at {where}: {exc}") from exc
    return client


class Engine:
    """A lazily connected engine, shared by the executor's runs (the SDK client is
    thread-safe for independent requests)."""

    def __init__(self) -> None:
        self._client: Any = None
        self._lock = threading.Lock()
        self._can_publish: bool | None = None

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = connect()
            return self._client

    def reset(self) -> None:
        """Forget the connection (the next use reconnects)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def describe(self, workdir_probe: str | None = None) -> dict[str, Any]:
        """What the provider registers about its engine: version, API version, runtimes,
        GPU support, storage driver, free disk under the engine's data root (or the
        provider's work directory when the data root is not visible here), and whether ports
        can be published."""
        client = self.client
        try:
            version = client.version()
            info = client.info()
        except Exception as exc:  # noqa: BLE001 - SDK and transport errors alike
            raise EngineUnavailable(f"the Docker engine did not describe itself: {exc}") from exc
        runtimes = sorted((info.get("Runtimes") or {}).keys())
        root = info.get("DockerRootDir") or ""
        free = None
        for probe in (root, workdir_probe):
            if probe and os.path.isdir(probe):
                with contextlib.suppress(OSError):
                    free = shutil.disk_usage(probe).free
                    break
        return {
            "version": version.get("Version"),
            "api_version": version.get("ApiVersion"),
            "os": info.get("OperatingSystem"),
            "runtimes": runtimes,
            "default_runtime": info.get("DefaultRuntime"),
            "gpu_support": gpu_support(runtimes),
            "storage_driver": info.get("Driver"),
            "cgroup_version": info.get("CgroupVersion"),
            "cpus": info.get("NCPU"),
            "memory_bytes": info.get("MemTotal"),
            "disk_free_bytes": free,
            "port_publishing": self.can_publish_ports(),
            # who caps what a container writes: tmpfs sizes are the engine's; /outputs is a
            # folder on the provider's disk, measured by the executor (see executor.py)
            "storage_limits": {"scratch": "engine", "outputs": "provider"},
        }

    def can_publish_ports(self) -> bool:
        """Whether a user-defined bridge network can be created here (ports are published
        through one; an engine started with `--bridge=none` still allows it, through its
        userland proxy). Probed once."""
        if self._can_publish is None:
            try:
                net = self.client.networks.create(
                    "dcm-probe-" + os.urandom(4).hex(),
                    driver="bridge",
                    labels={LABEL_PROVIDER: "probe"},
                )
                net.remove()
                self._can_publish = True
            except Exception:  # noqa: BLE001 - any refusal means no
                self._can_publish = False
        return self._can_publish

    def remove_leftovers(self, provider_id: str) -> int:
        """Remove every container and network labelled with this provider (a run that was
        killed left them). Returns how many containers went."""
        client = self.client
        label = f"{LABEL_PROVIDER}={provider_id}"
        removed = 0
        try:
            # sparse: no inspect per container, which races with one going away meanwhile
            listed = client.containers.list(all=True, filters={"label": label}, sparse=True)
            for container in listed:
                with contextlib.suppress(Exception):
                    container.remove(force=True, v=True)
                    removed += 1
            for network in client.networks.list(filters={"label": label}):
                with contextlib.suppress(Exception):
                    network.remove()
        except Exception as exc:  # noqa: BLE001
            raise EngineUnavailable(f"listing leftover containers failed: {exc}") from exc
        return removed


def gpu_support(runtimes: list[str]) -> bool:
    """Whether the engine can hand GPUs to a container: an `nvidia` runtime registered, or
    the NVIDIA container hook Docker's `--gpus` uses on the PATH."""
    return "nvidia" in runtimes or shutil.which("nvidia-container-runtime-hook") is not None
