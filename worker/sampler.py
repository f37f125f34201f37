"""Resource samples of the process tree running a job, reported while it runs.

`ResourceSampler(report, pid)` is a context manager: a thread takes a sample of the process
tree rooted at `pid` every `interval_seconds` (and one last at the end) and hands it to
`report` (the daemon passes `Reporter.report_metrics`). A sample is a dict with the keys
of `marketplace.leases.ResourceSample`:

- `cpu_millicores`: CPU time the tree used since the previous sample (user + system, of
  the live processes and of the children they reaped) over the wall time between them;
- `memory_bytes`: the resident set of the tree's processes, summed (shared pages count
  once per process, as `docker stats` does not: an upper bound);
- `network_rx_bytes`/`network_tx_bytes`: only when the root runs in a network namespace
  of its own (a sandboxed job): the namespace's counters, cumulative, loopback left out.
  A job that shares the daemon's namespace has no counters of its own, so none are sent
  rather than the whole machine's;
- `gpu_utilization` (percent, the mean over the GPUs the tree uses) and
  `gpu_memory_bytes` (what the tree's processes hold on them), when a GPU is in use:
  from NVML (`pynvml`) when it answers, else from `nvidia-smi`; absent otherwise.

Processes are read with `psutil` when it is installed, else straight from `/proc`
(Linux). The YOLO executor trains in the daemon's own process, so for it the tree is the
daemon's: its own few threads (HTTP, heartbeats) are counted with the training, and a
daemon running several in-process jobs at once reports the process's total for each
(run such jobs one per process, as the YOLO executor advises anyway).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("dcm.provider.sampler")


@dataclass(frozen=True)
class TreeUsage:
    """What the tree used up to one moment."""

    pids: frozenset[int]
    cpu_seconds: float  # cumulative, of live processes and the children they reaped
    rss_bytes: int


class ProcessReader(Protocol):
    def usage(self, root: int) -> TreeUsage | None: ...


class PsutilReader:
    """Reads the tree with psutil."""

    def __init__(self) -> None:
        import psutil

        self.psutil = psutil

    def usage(self, root: int) -> TreeUsage | None:
        ps = self.psutil
        try:
            top = ps.Process(root)
            procs = [top, *top.children(recursive=True)]
        except (ps.NoSuchProcess, ps.AccessDenied):
            return None
        pids, cpu, rss = set(), 0.0, 0
        for proc in procs:
            try:
                with proc.oneshot():
                    t = proc.cpu_times()
                    mem = proc.memory_info().rss
            except (ps.NoSuchProcess, ps.AccessDenied, ps.ZombieProcess):
                continue
            pids.add(proc.pid)
            cpu += t.user + t.system + t.children_user + t.children_system
            rss += mem
        return TreeUsage(frozenset(pids), cpu, rss) if pids else None


class ProcReader:
    """Reads the tree from /proc (Linux, no dependency)."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self.proc = proc
        self.tick = os.sysconf("SC_CLK_TCK")
        self.page = os.sysconf("SC_PAGE_SIZE")

    def _stat(self, pid: int) -> list[str] | None:
        try:
            raw = (self.proc / str(pid) / "stat").read_text()
        except OSError:
            return None
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        return raw[raw.rindex(")") + 2 :].split()

    def usage(self, root: int) -> TreeUsage | None:
        stats: dict[int, list[str]] = {}
        children: dict[int, list[int]] = {}
        for entry in self.proc.iterdir():
            if not entry.name.isdigit():
                continue
            fields = self._stat(int(entry.name))
            if fields is None:
                continue
            pid = int(entry.name)
            stats[pid] = fields
            children.setdefault(int(fields[1]), []).append(pid)
        if root not in stats:
            return None
        pids, todo, cpu, rss = set(), [root], 0.0, 0
        while todo:
            pid = todo.pop()
            if pid in pids or pid not in stats:
                continue
            pids.add(pid)
            todo.extend(children.get(pid, ()))
            f = stats[pid]  # after the state: [1] ppid ... [11] utime [12] stime [13] cutime
            cpu += sum(int(x) for x in f[11:15]) / self.tick  # [14] cstime ... [21] rss
            rss += int(f[21]) * self.page
        return TreeUsage(frozenset(pids), cpu, rss)


def default_reader() -> ProcessReader:
    try:
        return PsutilReader()
    except ImportError:
        return ProcReader()


def own_network_counters(pid: int, proc: Path = Path("/proc")) -> tuple[int, int] | None:
    """(rx, tx) bytes of `pid`'s network namespace, loopback left out, if that namespace
    is not this process's; None otherwise (or when unreadable)."""
    try:
        if os.readlink(proc / str(pid) / "ns" / "net") == os.readlink(proc / "self" / "ns" / "net"):
            return None
        lines = (proc / str(pid) / "net" / "dev").read_text().splitlines()[2:]
    except OSError:
        return None
    rx = tx = 0
    for line in lines:
        name, _, counters = line.partition(":")
        if name.strip() == "lo":
            continue
        fields = counters.split()
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx


# --------------------------------------------------------------------------- GPUs


class GpuProbe(Protocol):
    def usage(self, pids: frozenset[int]) -> tuple[float, int] | None:
        """(mean utilization % over the GPUs `pids` use, bytes they hold), or None."""
        ...


class NvmlProbe:
    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self.nvml = pynvml
        self.handles = [
            pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
        ]

    def usage(self, pids: frozenset[int]) -> tuple[float, int] | None:
        utilization: list[float] = []
        held = 0
        for handle in self.handles:
            try:
                procs = self.nvml.nvmlDeviceGetComputeRunningProcesses(handle)
                mine = [p for p in procs if p.pid in pids]
                if not mine:
                    continue
                held += sum(int(p.usedGpuMemory or 0) for p in mine)
                utilization.append(float(self.nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
            except self.nvml.NVMLError:
                continue
        return (sum(utilization) / len(utilization), held) if utilization else None


class NvidiaSmiProbe:
    def __init__(self, binary: str) -> None:
        self.binary = binary

    def _query(self, what: str, fields: str) -> list[list[str]]:
        out = subprocess.run(
            [self.binary, f"--query-{what}={fields}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return [[x.strip() for x in line.split(",")] for line in out.splitlines() if line.strip()]

    def usage(self, pids: frozenset[int]) -> tuple[float, int] | None:
        try:
            apps = self._query("compute-apps", "pid,gpu_uuid,used_memory")
            gpus = self._query("gpu", "uuid,utilization.gpu")
        except (OSError, subprocess.SubprocessError):
            return None
        return parse_smi(apps, gpus, pids)


def parse_smi(
    apps: Iterable[list[str]], gpus: Iterable[list[str]], pids: frozenset[int]
) -> tuple[float, int] | None:
    """`nvidia-smi`'s compute-apps (pid, gpu uuid, MiB) and gpu (uuid, %) rows -> the
    tree's (mean utilization of its GPUs, bytes held)."""
    used: set[str] = set()
    held = 0
    for row in apps:
        with contextlib.suppress(ValueError, IndexError):
            if int(row[0]) in pids:
                used.add(row[1])
                held += int(float(row[2])) * 1024 * 1024
    busy = []
    for row in gpus:
        with contextlib.suppress(ValueError, IndexError):
            if row[0] in used:
                busy.append(float(row[1]))
    return (sum(busy) / len(busy), held) if busy else None


def default_gpu_probe() -> GpuProbe | None:
    """NVML if it answers, else `nvidia-smi` if installed, else None (no GPU here)."""
    try:
        return NvmlProbe()
    except Exception:  # noqa: BLE001 - not installed, no driver, no device: try the next
        pass
    binary = shutil.which("nvidia-smi")
    return NvidiaSmiProbe(binary) if binary else None


# --------------------------------------------------------------------------- the sampler


class ResourceSampler:
    """Samples a process tree on a thread while the `with` block runs (module docstring).

    Args:
        report: takes each sample (a dict); its failures are logged and sampling goes on.
        pid: the tree's root; default this process.
        interval_seconds: between two samples.
        reader: how processes are read (default psutil, else /proc).
        gpu: the GPU probe; default `default_gpu_probe()`; pass None for none.
    """

    _DEFAULT: Any = object()

    def __init__(
        self,
        report: Callable[[dict[str, Any]], None],
        pid: int | None = None,
        *,
        interval_seconds: float = 10.0,
        reader: ProcessReader | None = None,
        gpu: GpuProbe | None = _DEFAULT,
    ) -> None:
        self.report = report
        self.pid = os.getpid() if pid is None else pid
        self.interval = interval_seconds
        self.reader = reader or default_reader()
        self.gpu = default_gpu_probe() if gpu is ResourceSampler._DEFAULT else gpu
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: tuple[float, float] | None = None  # (monotonic, cpu seconds)

    def sample(self) -> dict[str, Any] | None:
        """Take one sample now (None once the tree is gone). The first one only sets the
        CPU baseline and carries no `cpu_millicores`."""
        usage = self.reader.usage(self.pid)
        if usage is None:
            return None
        now = time.monotonic()
        out: dict[str, Any] = {"memory_bytes": usage.rss_bytes}
        if self._last is not None and now > self._last[0]:
            used = max(0.0, usage.cpu_seconds - self._last[1])
            out["cpu_millicores"] = round(1000.0 * used / (now - self._last[0]), 1)
        self._last = (now, usage.cpu_seconds)
        network = own_network_counters(self.pid)
        if network is not None:
            out["network_rx_bytes"], out["network_tx_bytes"] = network
        if self.gpu is not None:
            with contextlib.suppress(Exception):
                gpu = self.gpu.usage(usage.pids)
                if gpu is not None:
                    out["gpu_utilization"] = round(min(max(gpu[0], 0.0), 100.0), 1)
                    out["gpu_memory_bytes"] = gpu[1]
        return out

    def _emit(self) -> None:
        try:
            sample = self.sample()
            if sample is not None and "cpu_millicores" in sample:
                self.report(sample)
        except Exception:  # a failed sample or report must not end the job
            log.warning("resource sample of pid %d failed", self.pid, exc_info=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._emit()
        self._emit()  # the last stretch, so even a short job has one sample

    def __enter__(self) -> ResourceSampler:
        with contextlib.suppress(Exception):
            self.sample()  # the CPU baseline
        self._thread = threading.Thread(target=self._loop, name="dcm-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
