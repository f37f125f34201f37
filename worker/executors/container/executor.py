"""`ContainerExecutor.run`: one container job from its spec to its outputs, on the engine.

The steps: parse the spec; check this provider can honour it (GPUs, ports, disk); get the
image (engine, registry or IPFS); fetch the inputs (verified); create the container with
every limit set on the engine; start it; follow its logs and stats; wait for it to exit,
to be cancelled, to pass its deadline or to outgrow its storage; collect; remove.

What the engine enforces, and how:
- CPU: `nano_cpus` from millicores; memory: `mem_limit` with the same swap limit (no swap),
  an OOM kill read back from `State.OOMKilled`; processes: `pids_limit`.
- Storage: the root filesystem is read-only; the writable areas are tmpfs mounts sized by the
  engine (`/tmp` at `storage_bytes`, each volume at its `size_bytes`; tmpfs pages count
  against the memory limit) and `/outputs`. `/outputs` is the job's folder on the provider's
  disk (a tmpfs would vanish with the container before it could be pinned), and an engine on
  overlay2 over ext4 (this project's CI) cannot cap a bind mount's size; so the run measures
  it every second and stops the container once it holds more than `storage_bytes` (the job
  fails with `storage_exceeded`). A burst within that second can overshoot: the provider's
  free disk is checked against `storage_bytes` before the start for that reason.
- Duration: stopped at `duration_seconds` after the start (SIGTERM, SIGKILL after the grace
  period); the job fails with `timed_out` and the exit code the stop left.
- Network: `none`, unless the job exposes ports: then a bridge network of the job's own, each
  exposed port published on `publish_ip` at a port the engine picks, reported as endpoints.
- GPUs: a `DeviceRequest` for the count asked, refused unless the engine has the NVIDIA
  runtime and the provider registered that many GPUs.
- Privileges: the image's user, or nobody (65534:65534) when it names none; no new
  privileges; every capability dropped; the only host mounts are the inputs (read-only) and
  `/outputs`.

A container that exits 0 is a result; one that exits non-zero, is killed by OOM, runs past
its duration or outgrows its storage is the job's own failure (`ExecutionFailed`: outputs and
logs kept, no retry). An engine that fails is this provider's failure (`EngineUnavailable`:
the job is handed back).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from marketplace.errors import ValidationFailed
from worker.executors.base import (
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionResult,
    JobSpec,
    Reporter,
)
from worker.executors.container.engine import (
    LABEL_ATTEMPT,
    LABEL_JOB,
    LABEL_PROVIDER,
    Engine,
    EngineUnavailable,
)
from worker.executors.container.images import ensure_image
from worker.executors.container.settings import ContainerSettings
from worker.executors.container.spec import (
    OUTPUTS_PATH,
    SCRATCH_PATH,
    ContainerJob,
    parse_container_job,
)
from worker.executors.container.streams import LogPump, StatsPump

log = logging.getLogger("dcm.provider.container")

RESULT_TYPE = "container_outputs"
_STORAGE_CHECK_SECONDS = 1.0


class ContainerExecutor:
    """Runs `container` jobs on the Docker engine `DOCKER_HOST` names."""

    job_types: ClassVar[frozenset[str]] = frozenset({"container"})
    # `docker stats` measures the container; the daemon's process-tree sampler would not
    reports_own_metrics: ClassVar[bool] = True

    def __init__(
        self, settings: ContainerSettings | None = None, engine: Engine | None = None
    ) -> None:
        self.settings = settings or ContainerSettings()
        self.engine = engine or Engine()
        self.provider_id = "unregistered"

    # -- what the daemon asks before claiming --------------------------------------------

    def missing(self) -> str | None:
        """Why this machine cannot run containers (no engine answers), or None."""
        try:
            self.engine.client  # noqa: B018 - connects and pings
        except EngineUnavailable as exc:
            return str(exc)
        return None

    def capabilities(self) -> dict[str, Any]:
        """The engine, as registered with the node (`docker`: version, runtimes, GPU
        support, free disk, port publishing)."""
        try:
            return {"docker": self.engine.describe()}
        except EngineUnavailable as exc:
            return {"docker": {"error": str(exc)}}

    def self_check(self) -> list[str]:
        try:
            self.engine.client.ping()
        except Exception as exc:  # noqa: BLE001
            self.engine.reset()
            return [f"the Docker engine does not answer: {exc}"]
        return []

    def recover(self, provider_id: str) -> None:
        """Remember which provider this is (containers are labelled with it) and remove the
        containers and networks an earlier run of it left behind."""
        self.provider_id = provider_id
        try:
            removed = self.engine.remove_leftovers(provider_id)
        except EngineUnavailable as exc:  # no engine: nothing can have been left on it
            log.debug("no leftover containers to look for: %s", exc)
            return
        if removed:
            log.info("removed %d container(s) left behind by an earlier run", removed)

    # -- one job -------------------------------------------------------------------------

    def run(self, job: JobSpec, workdir: Path, report: Reporter) -> ExecutionResult:
        spec = parse_container_job(job.spec)
        limits = _Limits.of(spec, self.settings)
        client = self.engine.client
        self._check_fit(spec, limits, workdir)
        image = ensure_image(
            client,
            spec.image,
            fetch=job.fetch,
            report=report,
            max_image_bytes=self.settings.max_image_bytes,
        )
        if report.should_cancel():
            raise ExecutionCancelled()
        mounts = self._inputs(spec, job, report)
        outputs = workdir / "outputs"
        outputs.mkdir(parents=True, exist_ok=True)
        os.chmod(outputs, 0o777)  # the container's user (nobody by default) writes there
        mounts[str(outputs)] = {"bind": OUTPUTS_PATH, "mode": "rw"}
        run = _Run(self, job, spec, limits, image, mounts, outputs, report)
        try:
            return run.execute()
        finally:
            run.remove()

    def _check_fit(self, spec: ContainerJob, limits: _Limits, workdir: Path) -> None:
        """What only another provider could run: raised as this provider's failure (the
        job is handed back for others), never as the job's."""
        if spec.gpus:
            from worker.hardware import detect_gpus

            registered = len(detect_gpus()["gpus"])
            gpu_ok = self.engine.describe().get("gpu_support")
            if not gpu_ok or spec.gpus > registered:
                raise EngineUnavailable(
                    f"the job asks {spec.gpus} GPU(s); this provider's engine "
                    f"{'has no GPU runtime' if not gpu_ok else f'can give {registered}'}"
                )
        if spec.exposed_ports and not self.engine.can_publish_ports():
            raise EngineUnavailable(
                "the job exposes ports, and this provider's engine cannot create a bridge "
                "network to publish them"
            )
        probe = workdir if workdir.exists() else workdir.parent
        free = shutil.disk_usage(probe).free
        if free < limits.storage_bytes:
            raise EngineUnavailable(
                f"the job asks {limits.storage_bytes} bytes of storage; {free} are free here"
            )

    def _inputs(self, spec: ContainerJob, job: JobSpec, report: Reporter) -> dict[str, Any]:
        mounts: dict[str, Any] = {}
        for cid, path in spec.input_mounts():
            if job.fetch is None:
                raise EngineUnavailable("this provider cannot fetch job inputs")
            report.log(f"fetching input {cid} for {path}")
            local = job.fetch(cid)
            mounts[str(local)] = {"bind": path, "mode": "ro"}
            if report.should_cancel():
                raise ExecutionCancelled()
        if len(mounts) != len(spec.inputs):
            raise ValidationFailed("the same input CID is listed twice")
        return mounts


class _Limits:
    def __init__(self, cpu: int, memory: int, storage: int, duration: int) -> None:
        self.cpu_millicores, self.memory_bytes = cpu, memory
        self.storage_bytes, self.duration_seconds = storage, duration

    @classmethod
    def of(cls, spec: ContainerJob, settings: ContainerSettings) -> _Limits:
        return cls(
            spec.cpu_millicores or settings.default_cpu_millicores,
            spec.memory_bytes or settings.default_memory_bytes,
            spec.storage_bytes or settings.default_storage_bytes,
            spec.duration_seconds or settings.default_duration_seconds,
        )


class _Run:
    """One container's life, from create to remove."""

    def __init__(
        self,
        executor: ContainerExecutor,
        job: JobSpec,
        spec: ContainerJob,
        limits: _Limits,
        image: Any,
        mounts: dict[str, Any],
        outputs: Path,
        report: Reporter,
    ) -> None:
        self.engine, self.settings = executor.engine, executor.settings
        self.client = executor.engine.client
        self.provider_id = executor.provider_id
        self.job, self.spec, self.limits = job, spec, limits
        self.image, self.mounts, self.outputs, self.report = image, mounts, outputs, report
        self.container: Any = None
        self.network: Any = None
        self.pumps: list[threading.Thread] = []

    @property
    def labels(self) -> dict[str, str]:
        return {
            LABEL_PROVIDER: self.provider_id,
            LABEL_JOB: self.job.job_id,
            LABEL_ATTEMPT: str(self.job.attempt),
        }

    def _name(self) -> str:
        suffix = os.urandom(3).hex()
        return f"dcm-{self.job.job_id}-a{self.job.attempt}-{suffix}".replace("_", "-")

    def create(self) -> None:
        from docker.errors import APIError, ImageNotFound
        from docker.types import DeviceRequest, LogConfig

        spec, limits = self.spec, self.limits
        image_config = self.image.attrs.get("Config") or {}
        tmpfs = {SCRATCH_PATH: f"size={limits.storage_bytes},mode=1777"}
        for volume in spec.volumes:
            tmpfs[volume.mount_path] = f"size={volume.size_bytes},mode=1777"
        network_mode: str | None = "none"
        ports: dict[str, Any] = {}
        if spec.exposed_ports:
            self.network = self.client.networks.create(
                self._name(), driver="bridge", labels=self.labels
            )
            network_mode = self.network.name
            ports = {f"{p}/tcp": (self.settings.publish_ip, None) for p in spec.exposed_ports}
        kwargs: dict[str, Any] = {
            "image": self.image.id,
            "entrypoint": spec.command,
            "command": spec.args or None,
            "environment": dict(spec.env),
            "user": image_config.get("User") or self.settings.user,
            "labels": self.labels,
            "name": self._name(),
            "detach": True,
            "nano_cpus": limits.cpu_millicores * 1_000_000,
            "mem_limit": limits.memory_bytes,
            "memswap_limit": limits.memory_bytes,
            "pids_limit": self.settings.pids_limit,
            "read_only": True,
            "tmpfs": tmpfs,
            "volumes": self.mounts,
            "network_mode": network_mode,
            "ports": ports,
            "security_opt": ["no-new-privileges"],
            "cap_drop": ["ALL"],
            "log_config": LogConfig(type="json-file", config={"max-size": "100m"}),
        }
        if spec.gpus:
            kwargs["device_requests"] = [DeviceRequest(count=spec.gpus, capabilities=[["gpu"]])]
        try:
            self.container = self.client.containers.create(**kwargs)
        except ImageNotFound as exc:
            raise EngineUnavailable(f"the image went away before the start: {exc}") from exc
        except APIError as exc:
            if exc.status_code == 400:  # the engine refuses the job's parameters
                raise ValidationFailed(
                    f"the engine refused the container: {exc.explanation}"
                ) from exc
            raise EngineUnavailable(f"creating the container failed: {exc}") from exc

    def execute(self) -> ExecutionResult:
        from docker.errors import APIError

        self.create()
        try:
            self.container.start()
        except APIError as exc:
            if exc.status_code == 400:  # e.g. an entrypoint the image does not have
                raise ValidationFailed(f"the container did not start: {exc.explanation}") from exc
            raise EngineUnavailable(f"starting the container failed: {exc}") from exc
        started = time.monotonic()
        endpoints = self._endpoints()
        self.report.progress(
            0,
            f"Container {self.container.short_id} running",
            {"endpoints": endpoints} if endpoints else None,
        )
        for stream in ("stdout", "stderr"):
            self.pumps.append(LogPump(self.client, self.container.id, stream, self.report))
        stats = StatsPump(
            self.client, self.container.id, getattr(self.report, "report_metrics", None)
        )
        self.pumps.append(stats)
        for pump in self.pumps:
            pump.start()
        outcome = self._wait(started)
        stats.stop()  # its stream may sit a second on an exited container: not waited for
        for pump in self.pumps:
            if pump is not stats:
                pump.join(timeout=10)  # every line is queued before the run ends
        state = self._state()
        exit_code = int(state.get("ExitCode", -1))
        oom = bool(state.get("OOMKilled")) or (
            outcome == "exited" and exit_code == 137 and self._oom_reported_late()
        )
        metrics: dict[str, Any] = {
            "exit_code": exit_code,
            "oom": oom,
            "timed_out": outcome == "timed_out",
            "storage_exceeded": outcome == "storage_exceeded",
            "endpoints": endpoints,
            "image": self.image.id,
            "started_at": state.get("StartedAt"),
            "finished_at": state.get("FinishedAt"),
            "run_seconds": round(time.monotonic() - started, 3),
            "peak_memory_bytes": stats.peak_memory_bytes,
            "stats_samples": stats.samples,
        }
        if outcome == "cancelled":
            raise ExecutionCancelled()
        removed = _keep_regular_files(self.outputs)
        if removed:
            self.report.log(f"dropped {removed} link(s) or special file(s) from /outputs")
        result = ExecutionResult(
            output_dir=self.outputs,
            metrics=metrics,
            result_type=RESULT_TYPE,
            artifacts=_artifacts(self.outputs),
        )
        why = self._failure(outcome, exit_code, oom)
        if why is not None:
            self.report.log(why, "error")
            raise ExecutionFailed(why, result)
        self.report.log(f"container exited with code {exit_code}")
        return result

    def _failure(self, outcome: str, exit_code: int, oom: bool) -> str | None:
        limits = self.limits
        if outcome == "timed_out":
            return (
                f"timed out: the container ran past its duration of "
                f"{limits.duration_seconds}s and was stopped (exit code {exit_code})"
            )
        if outcome == "storage_exceeded":
            return (
                f"storage exceeded: /outputs grew past {limits.storage_bytes} bytes and the "
                f"container was stopped (exit code {exit_code})"
            )
        if oom:
            return (
                f"out of memory: the container was killed at its memory limit of "
                f"{limits.memory_bytes} bytes (exit code {exit_code})"
            )
        if exit_code != 0:
            return f"the container exited with code {exit_code}"
        return None

    def _wait(self, started: float) -> str:
        """Until the container exits ("exited"), is cancelled, passes its deadline
        ("timed_out") or outgrows its storage; the last three stop it first."""
        exited = threading.Event()

        def wait() -> None:
            with contextlib.suppress(Exception):
                self.container.wait()
            exited.set()

        threading.Thread(target=wait, name=f"wait-{self.container.short_id}", daemon=True).start()
        deadline = started + self.limits.duration_seconds
        next_storage_check = started + _STORAGE_CHECK_SECONDS
        while not exited.wait(self.settings.poll_seconds):
            now = time.monotonic()
            outcome = None
            if self.report.should_cancel():
                outcome = "cancelled"
            elif now >= deadline:
                outcome = "timed_out"
            elif now >= next_storage_check:
                next_storage_check = now + _STORAGE_CHECK_SECONDS
                if _tree_bytes(self.outputs) > self.limits.storage_bytes:
                    outcome = "storage_exceeded"
            if outcome is not None:
                self.stop()
                exited.wait(30)
                return outcome
        return "exited"

    def stop(self) -> None:
        """SIGTERM (the image's stop signal), SIGKILL after the grace period."""
        try:
            self.container.stop(timeout=int(self.settings.stop_grace_seconds))
        except Exception as exc:  # noqa: BLE001 - removal below forces it anyway
            log.warning("stopping container %s failed: %s", self.container.short_id, exc)

    def _oom_reported_late(self, within: float = 3.0) -> bool:
        """A SIGKILLed container may have been killed by the kernel's OOM killer: dockerd
        sets `OOMKilled` when containerd's OOM event reaches it, which under load can be
        after the exit event. Read the state again until it says so, for `within` s."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if self._state().get("OOMKilled"):
                return True
        return False

    def _state(self) -> dict[str, Any]:
        try:
            self.container.reload()
        except Exception as exc:  # noqa: BLE001
            raise EngineUnavailable(f"the container's state could not be read: {exc}") from exc
        return self.container.attrs.get("State") or {}

    def _endpoints(self) -> list[dict[str, Any]]:
        if not self.spec.exposed_ports:
            return []
        self.container.reload()
        published = (self.container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
        host = self.settings.endpoint_host
        out = []
        for port in self.spec.exposed_ports:
            for binding in published.get(f"{port}/tcp") or []:
                host_port = int(binding["HostPort"])
                out.append(
                    {
                        "port": port,
                        "protocol": "tcp",
                        "host": host,
                        "host_port": host_port,
                        "address": f"{host}:{host_port}",
                    }
                )
                break
        return out

    def remove(self) -> None:
        """Remove the container (forced: stops it first if a failure left it running) and
        the job's network. Never raises: a leftover is removed at the next start."""
        if self.container is not None:
            try:
                self.container.remove(force=True, v=True)
            except Exception as exc:  # noqa: BLE001
                log.warning("removing container %s failed: %s", self.container.short_id, exc)
        if self.network is not None:
            with contextlib.suppress(Exception):
                self.network.remove()


def _tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _keep_regular_files(root: Path) -> int:
    """Delete symlinks, FIFOs, sockets and devices a container left in /outputs: a link
    pointing at `/etc/...` would be followed on the provider's side when pinning."""
    removed = 0
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                os.unlink(path)
                removed += 1
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(dirpath, d))]
    return removed


def _artifacts(root: Path) -> tuple[str, ...]:
    return tuple(sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()))
