"""Executors: one per kind of work, all behind `worker.executors.base.Executor`.

`default_executors()` maps job types to executor instances for the daemon loop; importing this
package does not import torch or Ultralytics (the YOLO executor loads them on first run), nor
the Docker SDK (the container executor connects to the engine when first asked).
"""

from __future__ import annotations

from worker.executors.base import (
    ExecutionCancelled,
    ExecutionFailed,
    ExecutionResult,
    Executor,
    JobSpec,
    RecordingReporter,
    Reporter,
)

__all__ = [
    "ExecutionCancelled",
    "ExecutionFailed",
    "ExecutionResult",
    "Executor",
    "JobSpec",
    "RecordingReporter",
    "Reporter",
    "default_executors",
]


def default_executors() -> dict[str, Executor]:
    """Job type -> executor, for the executors this installation can run."""
    from worker.executors.container import ContainerExecutor
    from worker.executors.documents import document_executors
    from worker.executors.yolo import YoloExecutor

    yolo = YoloExecutor()
    containers = ContainerExecutor()
    return {
        **{job_type: yolo for job_type in YoloExecutor.job_types},
        **{job_type: containers for job_type in ContainerExecutor.job_types},
        **document_executors(),
    }
