"""The top-level docker-compose.yml is valid (`docker-compose config`, as CI checks it:
no registry is reachable there, so the stack itself runs as plain processes in
tests/e2e/test_replicas.py), takes every secret from the env file, and has a health check
on every long-running service."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fixtures.engines import require_engine

REPO = Path(__file__).resolve().parents[1]
ONE_SHOTS = {"escrow-deploy", "migrate"}


def _env(example: str, **overrides: str) -> str:
    lines = []
    for line in example.splitlines():
        if "=" in line and not line.startswith("#"):
            name, value = line.split("=", 1)
            line = f"{name}={overrides.get(name, value or 'x' * 40)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _config(tmp_path: Path, env: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(REPO / "docker-compose.yml", tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text(env)
    return subprocess.run(
        ["docker-compose", "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def compose() -> None:
    require_engine(shutil.which("docker-compose") is not None, "docker-compose not installed")


def test_compose_file_is_valid_and_complete(tmp_path: Path, compose: None) -> None:
    example = (REPO / ".env.example").read_text()
    done = _config(tmp_path, _env(example))
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    services = config["services"]
    assert {"postgres", "ipfs", "hardhat", "escrow-deploy", "migrate", "node", "proxy"} <= set(
        services
    )
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["ipfs"]["image"].startswith("ipfs/kubo:")
    assert services["node"]["scale"] == 2
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"
    for name in ("node", "provider"):
        assert services[name]["depends_on"], name
    # the replicas start only after the one-shots succeeded
    node_deps = services["node"]["depends_on"]
    for one_shot in ONE_SHOTS:
        assert node_deps[one_shot]["condition"] == "service_completed_successfully"


def test_compose_refuses_to_run_without_its_secrets(tmp_path: Path, compose: None) -> None:
    example = (REPO / ".env.example").read_text()
    done = _config(tmp_path, _env(example, POSTGRES_PASSWORD=""))
    assert done.returncode != 0
    assert "POSTGRES_PASSWORD" in done.stderr
