"""A real Docker engine (DOCKER_HOST) and a container executor labelled with a provider id of
the test's own, so tests sharing the engine never see each other's containers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.docker import busybox_image, docker_client  # noqa: F401 - fixtures
from worker.executors.container import ContainerExecutor, ContainerSettings


@pytest.fixture
def provider_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def executor(docker_client: Any, busybox_image: str, provider_id: str) -> Iterator[Any]:  # noqa: F811
    executor = ContainerExecutor(ContainerSettings(stop_grace_seconds=1))
    executor.recover(provider_id)
    yield executor
    executor.engine.remove_leftovers(provider_id)
    executor.engine.reset()


def containers_of(docker_client: Any, provider_id: str) -> list[Any]:  # noqa: F811
    return docker_client.containers.list(
        all=True, filters={"label": f"dcm.provider={provider_id}"}, sparse=True
    )
