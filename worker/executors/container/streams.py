"""What a running container sends back while it runs: its stdout and stderr, line by line,
and `docker stats` samples, each on a thread of its own that ends when the container does.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

from worker.executors.base import Reporter

MAX_LINE_CHARS = 8000


class LogPump(threading.Thread):
    """Follows one stream (`stdout` or `stderr`) of a container into `report.log` with
    `stream=` set; a partial last line is sent when the stream ends."""

    def __init__(self, client: Any, container_id: str, stream: str, report: Reporter) -> None:
        super().__init__(name=f"logs-{stream}-{container_id[:12]}", daemon=True)
        self.client, self.container_id, self.stream, self.report = (
            client,
            container_id,
            stream,
            report,
        )
        self.lines = 0

    def run(self) -> None:
        buf = b""
        with contextlib.suppress(Exception):  # the engine went away: the run notices
            chunks = self.client.api.logs(
                self.container_id,
                stdout=self.stream == "stdout",
                stderr=self.stream == "stderr",
                stream=True,
                follow=True,
            )
            for chunk in chunks:
                buf += chunk
                *complete, buf = buf.split(b"\n")
                for raw in complete:
                    self._send(raw)
        if buf:
            self._send(buf)

    def _send(self, raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        self.lines += 1
        self.report.log(line[:MAX_LINE_CHARS], "info", stream=self.stream)


class StatsPump(threading.Thread):
    """Follows `docker stats` of a container; each sample goes to `on_sample` (the reporter's
    `report_metrics`), and the peak memory is kept for the job's final metrics."""

    def __init__(
        self,
        client: Any,
        container_id: str,
        on_sample: Callable[[Mapping[str, Any]], None] | None,
    ) -> None:
        super().__init__(name=f"stats-{container_id[:12]}", daemon=True)
        self.client, self.container_id, self.on_sample = client, container_id, on_sample
        self.samples = 0
        self.peak_memory_bytes = 0
        self.last: dict[str, Any] | None = None
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        with contextlib.suppress(Exception):
            for raw in self.client.api.stats(self.container_id, stream=True, decode=True):
                if self._halt.is_set():
                    break
                sample = stats_sample(raw)
                if sample is None:
                    continue
                self.samples += 1
                self.last = sample
                self.peak_memory_bytes = max(self.peak_memory_bytes, sample["memory_bytes"])
                if self.on_sample is not None:
                    with contextlib.suppress(Exception):  # a reporter never stops a run
                        self.on_sample(sample)


def stats_sample(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """One `docker stats` answer as a flat sample (None for the empty one the engine sends
    once a container has stopped). CPU is in percent of one core, as `docker stats` shows
    it, and in millicores, as the node's samples take it (`marketplace.leases.ResourceSample`;
    the reporter sends only the fields the node takes)."""
    memory = raw.get("memory_stats") or {}
    cpu = raw.get("cpu_stats") or {}
    if not memory and not (cpu.get("cpu_usage") or {}).get("total_usage"):
        return None
    pre = raw.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
        pre.get("cpu_usage") or {}
    ).get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or ())
    cpu_percent = (
        100.0 * cpu_delta / system_delta * max(online, 1)
        if pre.get("system_cpu_usage") and system_delta > 0 and cpu_delta >= 0
        else 0.0
    )
    stats = memory.get("stats") or {}
    # what `docker stats` shows: usage less the page cache (cgroup v1 `cache`, v2 `inactive_file`)
    cache = stats.get("total_inactive_file", stats.get("inactive_file", stats.get("cache", 0)))
    networks = raw.get("networks") or {}
    blkio = (raw.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    return {
        "at": raw.get("read"),
        "cpu_percent": round(cpu_percent, 2),
        "cpu_millicores": round(cpu_percent * 10),  # 100 % of one core is 1000 m
        "memory_bytes": max(int(memory.get("usage", 0)) - int(cache or 0), 0),
        "memory_limit_bytes": int(memory.get("limit", 0)),
        "network_rx_bytes": sum(int(n.get("rx_bytes", 0)) for n in networks.values()),
        "network_tx_bytes": sum(int(n.get("tx_bytes", 0)) for n in networks.values()),
        "block_read_bytes": sum(
            int(e.get("value", 0)) for e in blkio if str(e.get("op")).lower() == "read"
        ),
        "block_write_bytes": sum(
            int(e.get("value", 0)) for e in blkio if str(e.get("op")).lower() == "write"
        ),
        "pids": int((raw.get("pids_stats") or {}).get("current", 0)),
    }
