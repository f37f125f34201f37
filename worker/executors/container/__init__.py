"""The container executor: `container` jobs on the provider's Docker engine.

A package by concern:
- `spec`: the job's parameters (image, command, limits, ports, volumes, inputs) as the
  provider reads them, refusing what would be unsafe to hand the engine;
- `settings`: the provider's defaults and limits (`DCM_CONTAINER_*`);
- `engine`: reaching the engine (`DOCKER_HOST`), describing it for registration, removing
  what an earlier run of this provider left behind (containers are labelled);
- `images`: the image from the engine, a registry (pulled with progress, size-limited) or
  IPFS (`ipfs://<cid>`, a verified `docker save` archive);
- `streams`: stdout/stderr line by line and `docker stats` samples while it runs;
- `executor`: `ContainerExecutor.run`, the container's life with every limit on the engine.

Importing this package does not import the Docker SDK; the first use connects.
"""

from __future__ import annotations

from worker.executors.container.engine import Engine, EngineUnavailable
from worker.executors.container.executor import RESULT_TYPE, ContainerExecutor
from worker.executors.container.settings import ContainerSettings
from worker.executors.container.spec import ContainerJob, parse_container_job

__all__ = [
    "RESULT_TYPE",
    "ContainerExecutor",
    "ContainerJob",
    "ContainerSettings",
    "Engine",
    "EngineUnavailable",
    "parse_container_job",
]
