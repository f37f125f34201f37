"""A provider advertises only the job types it can run, checked at start (issue 11: a
provider without the training extra claimed a funded job and failed it)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

import pytest

from marketplace.errors import ValidationFailed
from worker.daemon import DaemonConfig, ProviderDaemon


class _Trainer:
    job_types: ClassVar[frozenset[str]] = frozenset({"image_processing"})

    def __init__(self, missing: str | None) -> None:
        self._missing = missing

    def missing(self) -> str | None:
        return self._missing

    def run(self, job, workdir, report):  # type: ignore[no-untyped-def]
        raise AssertionError("never run here")


class _Echo:
    job_types: ClassVar[frozenset[str]] = frozenset({"echo"})

    def run(self, job, workdir, report):  # type: ignore[no-untyped-def]
        raise AssertionError("never run here")


def _daemon(tmp_path: Path, trainer_missing: str | None, types: list[str]) -> ProviderDaemon:
    config = DaemonConfig(node_url="http://127.0.0.1:9", workdir=tmp_path, job_types=types)
    executors = {"image_processing": _Trainer(trainer_missing), "echo": _Echo()}
    return ProviderDaemon(config, account=None, executors=executors)


def test_a_type_whose_executor_cannot_run_is_not_advertised(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, "ultralytics is not installed", ["image_processing", "echo"])
    assert daemon.runnable_job_types() == ["echo"]
    able = _daemon(tmp_path, None, ["image_processing", "echo"])
    assert able.runnable_job_types() == ["image_processing", "echo"]


def test_a_provider_that_can_run_nothing_refuses_to_start(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, "ultralytics is not installed", ["image_processing"])
    with pytest.raises(ValidationFailed, match="ultralytics is not installed"):
        asyncio.run(daemon.__aenter__())


def test_container_jobs_are_not_offered_without_an_engine_that_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.executors.container import ContainerExecutor

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    config = DaemonConfig(
        node_url="http://127.0.0.1:9", workdir=tmp_path, job_types=["container", "echo"]
    )
    executor = ContainerExecutor()
    daemon = ProviderDaemon(
        config, account=None, executors={"container": executor, "echo": _Echo()}
    )
    assert daemon.runnable_job_types() == ["echo"]
    assert "no Docker engine answers" in (executor.missing() or "")


def test_document_handlers_are_advertised_only_with_their_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider without Tesseract does not offer `pdf` or `session`, still `transformer`."""
    from worker.executors.documents import common, document_executors

    config = DaemonConfig(
        node_url="http://127.0.0.1:9", workdir=tmp_path, job_types=["pdf", "transformer", "session"]
    )
    real_which = common.shutil.which
    monkeypatch.setattr(
        common.shutil, "which", lambda name: None if name == "tesseract" else real_which(name)
    )
    daemon = ProviderDaemon(config, account=None, executors=document_executors())
    assert daemon.runnable_job_types() == ["transformer"]
    assert "tesseract is not installed" in (document_executors()["pdf"].missing() or "")
