"""The one small interface between the provider daemon loop and the code that runs a job.

The loop claims a job, prepares a work directory and the verified dataset, then calls
`executor.run(job, workdir, reporter)`. It knows nothing about YOLO or Docker: an executor
reports progress and log lines through the `Reporter` it is given, polls
`reporter.should_cancel()`, and returns an `ExecutionResult` whose `output_dir` the loop pins as
one UnixFS directory.

Metrics: the daemon samples the resources of the process tree that runs the job
(`worker.sampler`: the daemon's own process, where an executor trains in-process) and sends
each sample through `reporter.report_metrics(sample)`. An executor that measures its work
better itself (a container's `docker stats`) sets `reports_own_metrics = True` and calls
`report.report_metrics({...})` with its own samples; the daemon then samples nothing. A
sample is a dict with any of `cpu_millicores`, `memory_bytes`, `network_rx_bytes`,
`network_tx_bytes` (cumulative since the run started), `gpu_utilization` (percent) and
`gpu_memory_bytes`, and optionally `at` (an aware datetime or ISO string; default now): the
fields of `marketplace.leases.ResourceSample`. Per-epoch training metrics (losses, mAP,
accuracy) go through `report.report_training(epoch, metrics)` (epoch 1-based, metrics a flat
name -> number mapping), once per finished epoch; reporting an epoch again replaces it.

How a run ends, and what the loop should do:
- returns `ExecutionResult`: upload `output_dir`, submit its CID;
- raises `ExecutionCancelled`: the job was cancelled (acknowledge, release the lease);
- raises `ExecutionFailed`: the job ran and failed by its own doing (a container that exited
  non-zero, ran out of memory or past its duration): upload its `result.output_dir` all the
  same, then fail the job (no retry) with the message and `result.metrics`;
- raises `marketplace.errors.ValidationFailed`: the job itself is unusable (bad parameters,
  dataset layout or labels): retrying elsewhere cannot help, fail the job with the message;
- raises anything else: this provider failed (crash, out of memory): hand the job back so
  another attempt may run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from marketplace.datasets.layout import DatasetLayout


@dataclass(frozen=True)
class JobSpec:
    """A claimed job as an executor sees it.

    Attributes:
        job_id: the node's job id (`job_5`).
        attempt: the lease's attempt number (fencing token), for the loop's writes.
        job_type: the job type the executor was chosen for (`yolo_training`...).
        spec: the job's parameters as submitted (model, epochs, imgsz, export_format...).
        dataset_dir: the fetched, CID-verified dataset (read-only for the executor), if any.
        dataset_layout: where the dataset's splits are, as the node detected it at upload;
            None for a job stored before layouts were (the executor detects it then).
        fetch: `fetch(cid) -> Path`, the content a job names beyond its dataset (a container
            job's inputs, an image archive), downloaded from the node and verified against
            its CID (a file for a file CID, a directory for a directory CID; kept in the
            provider's cache). Blocking: call it from the executor's thread. Raises
            `DatasetMismatch` when the bytes do not match. None where nothing can be fetched.
    """

    job_id: str
    attempt: int
    job_type: str
    spec: Mapping[str, Any]
    dataset_dir: Path | None = None
    dataset_layout: DatasetLayout | None = None
    fetch: Callable[[str], Path] | None = None


@dataclass(frozen=True)
class ExecutionResult:
    """What a finished run produced.

    Attributes:
        output_dir: one directory holding every artifact (pinned as a whole).
        metrics: final metrics (flat, JSON-serialisable), shown as the job's result.
        result_type: what the artifacts are (`yolo_model`), for clients.
        artifacts: relative POSIX paths of the files in `output_dir`, sorted.
    """

    output_dir: Path
    metrics: dict[str, Any]
    result_type: str
    artifacts: tuple[str, ...] = ()


class ExecutionCancelled(Exception):
    """The run stopped because `reporter.should_cancel()` said so."""

    def __init__(self, message: str = "cancelled", *, completed_epochs: int | None = None):
        super().__init__(message)
        self.completed_epochs = completed_epochs


class ExecutionFailed(Exception):
    """The job ran and failed by its own doing; `result` holds what it left (outputs kept,
    metrics such as the exit code), which the loop uploads before failing the job."""

    def __init__(self, message: str, result: ExecutionResult) -> None:
        super().__init__(message)
        self.message = message
        self.result = result


@runtime_checkable
class Reporter(Protocol):
    """Where an executor sends what happens. Called from the executor's calling thread.

    `should_cancel` is polled several times a second: it must be cheap (return a flag that the
    heartbeat loop sets, not make a request). `log`'s `stream` names where a line came from
    (`stdout`/`stderr` of a container) when it is not the executor's own. `report_metrics`
    and `report_training` never raise: the loop forwards them to the node where the node
    takes them, and drops them otherwise.
    """

    def progress(
        self, percent: float, message: str, metrics: Mapping[str, Any] | None = None
    ) -> None: ...

    def log(self, line: str, level: str = "info", stream: str | None = None) -> None: ...

    def report_metrics(self, sample: Mapping[str, Any]) -> None:
        """One resource sample (see the module's docstring for its keys)."""
        ...

    def report_training(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """One finished training epoch's metrics (1-based `epoch`)."""
        ...

    def should_cancel(self) -> bool: ...


@runtime_checkable
class Executor(Protocol):
    """Runs one kind of job. `job_types` names the job types it accepts; an executor may
    also define `missing() -> str | None`, why this machine cannot run it (the daemon
    then does not advertise its job types), `capabilities() -> dict` (merged into the
    provider's registration), `self_check() -> list[str]` (problems found before a claim
    after failures) and `recover(provider_id)` (called once at the daemon's start, before
    any claim: clean up what an earlier run of this provider left behind)."""

    job_types: ClassVar[frozenset[str]]
    # Optional (read with getattr, default False): True when `run` reports its own
    # resource samples, so the daemon does not sample the process tree.
    # reports_own_metrics: ClassVar[bool]

    def run(self, job: JobSpec, workdir: Path, report: Reporter) -> ExecutionResult: ...


@dataclass
class RecordingReporter:
    """A reporter that keeps everything in memory (tests, benchmarks, `dcm demo`'s local runs).

    `cancel_after_progress=N` makes `should_cancel()` true once N progress reports were made.
    """

    cancel_after_progress: int | None = None
    progress_calls: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)
    streams: list[tuple[str | None, str]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    training: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    _cancel: threading.Event = field(default_factory=threading.Event)

    def progress(
        self, percent: float, message: str, metrics: Mapping[str, Any] | None = None
    ) -> None:
        self.progress_calls.append((percent, message, dict(metrics or {})))
        if (
            self.cancel_after_progress is not None
            and len(self.progress_calls) >= self.cancel_after_progress
        ):
            self._cancel.set()

    def log(self, line: str, level: str = "info", stream: str | None = None) -> None:
        self.lines.append((level, line))
        self.streams.append((stream, line))

    def report_metrics(self, sample: Mapping[str, Any]) -> None:
        self.samples.append(dict(sample))

    def report_training(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.training.append((epoch, dict(metrics)))

    def cancel(self) -> None:
        self._cancel.set()

    def should_cancel(self) -> bool:
        return self._cancel.is_set()
