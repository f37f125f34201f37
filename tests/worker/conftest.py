"""Fixtures for the worker tests: Ultralytics imported offline once per session, and PyYAML
for the dataset view's `data.yaml` class names; both come with the `[train]` extra (skipped
locally when it is absent, a failure in CI under DCM_REQUIRE_ENGINES=1)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.fixtures.engines import require_engine


@pytest.fixture(scope="session")
def yolo_config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ultralytics' settings/fonts dir for the session; Ultralytics is importable offline."""
    require_engine(
        importlib.util.find_spec("ultralytics") is not None,
        "ultralytics not installed (pip install -e '.[train]')",
    )
    from worker.executors.yolo import import_ultralytics, offline_environment

    config_dir = tmp_path_factory.mktemp("ultralytics-config")
    with offline_environment(config_dir):
        import_ultralytics(config_dir)
    return config_dir


@pytest.fixture
def yaml_available() -> None:
    """PyYAML is importable (the dataset view reads class names from a `data.yaml` with it)."""
    require_engine(
        importlib.util.find_spec("yaml") is not None,
        "PyYAML not installed (pip install -e '.[train]')",
    )
