"""`dcm user create NAME --password-stdin`: the only way to make a password account."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient

from dcm.cli import main
from node.config import NodeSettings


def _env(settings: NodeSettings) -> dict[str, str]:
    return {"DCM_DATABASE_URL": str(settings.database_url), "DCM_DATA_DIR": str(settings.data_dir)}


def test_created_user_can_log_in(client: TestClient, settings: NodeSettings) -> None:
    result = CliRunner().invoke(
        main,
        ["user", "create", "carol", "--password-stdin"],
        input="correct horse battery\n",
        env=_env(settings),
    )
    assert result.exit_code == 0, result.output
    assert "created user carol" in result.output
    resp = client.post(
        "/auth/login", json={"username": "carol", "password": "correct horse battery"}
    )
    assert resp.status_code == 200
    assert resp.json()["token_type"] == "bearer"


def test_duplicate_name_is_refused(client: TestClient, settings: NodeSettings) -> None:
    args = ["user", "create", "carol", "--password-stdin"]
    runner = CliRunner()
    assert runner.invoke(main, args, input="first-password\n", env=_env(settings)).exit_code == 0
    again = runner.invoke(main, args, input="second-password\n", env=_env(settings))
    assert again.exit_code != 0
    assert "already exists" in again.output
    ok = client.post("/auth/login", json={"username": "carol", "password": "first-password"})
    assert ok.status_code == 200


def test_short_password_is_refused(client: TestClient, settings: NodeSettings) -> None:
    result = CliRunner().invoke(
        main, ["user", "create", "dave", "--password-stdin"], input="short\n", env=_env(settings)
    )
    assert result.exit_code != 0
    resp = client.post("/auth/login", json={"username": "dave", "password": "short"})
    assert resp.status_code == 401


def test_there_is_no_default_account(client: TestClient, tmp_path: Path) -> None:
    for username, password in [("admin", "admin"), ("admin", "password"), ("root", "root")]:
        resp = client.post("/auth/login", json={"username": username, "password": password})
        assert resp.status_code == 401
