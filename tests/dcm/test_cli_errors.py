"""Every mistake a user can make with `dcm` is one readable line on stderr and a non-zero
exit code, never a traceback; and nothing is left half-done (issue 11)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fastapi import FastAPI

from dcm.cli import main
from marketplace.wallet import new_keystore
from tests.fixtures import web
from tests.fixtures.live import served_in_thread

PASSWORD = "wallet-pass-1"


@pytest.fixture
def live_node(app: FastAPI) -> Iterator[str]:
    with served_in_thread(app) as url:
        yield url


def _wallet(tmp_path: Path, name: str) -> tuple[Path, str]:
    path = tmp_path / f"{name}.json"
    return path, new_keystore(str(path), PASSWORD)


def _funded(node: str, tmp_path: Path) -> Path:
    path, address = _wallet(tmp_path, "funded")
    resp = web.post(f"{node}/chain/faucet", json={"address": address, "amount": "1"}, timeout=60)
    assert resp.status_code == 200, resp.text
    return path


def _dcm(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"DCM_WALLET_PASSWORD": PASSWORD})


def _one_clean_line(result: Result) -> str:
    """The failure contract: non-zero exit, exactly one line on stderr, no traceback
    (an exception escaping the command would be `result.exception` here)."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    return lines[0]


def _dataset(root: Path) -> Path:
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            d = root / split / cls
            d.mkdir(parents=True)
            (d / "a.jpg").write_bytes(b"not really a jpeg")
    return root


def _submit(node: str, keyfile: Path, dataset: Path, **over: str) -> Result:
    opts = {"--classes": "cat,dog", "--reward": "0.01", "--model": "yolov8n-cls", **over}
    args = ["job", "submit", str(dataset), "--node", node, "--keyfile", str(keyfile), "--no-wait"]
    for k, v in opts.items():
        args += [k, v]
    return _dcm(*args)


def _job_count(node: str) -> int:
    return len(web.get(f"{node}/jobs/get-jobs", timeout=30).json())


def test_node_down(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connection refused
        line = _one_clean_line(_dcm("job", "escrow", "5", "--node", f"http://127.0.0.1:{port}"))
    assert "cannot reach the node" in line


def test_url_without_scheme() -> None:
    line = _one_clean_line(_dcm("job", "escrow", "5", "--node", "127.0.0.1:8000"))
    assert "needs its scheme" in line


def test_bad_reward(tmp_path: Path) -> None:
    keyfile, _ = _wallet(tmp_path, "w")
    line = _one_clean_line(
        _submit("http://127.0.0.1:9", keyfile, _dataset(tmp_path / "ds"), **{"--reward": "ten"})
    )
    assert "not a decimal ETH amount" in line


def test_empty_and_corrupt_datasets(live_node: str, tmp_path: Path) -> None:
    keyfile = _funded(live_node, tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_clean_line(_submit(live_node, keyfile, empty))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "notes.txt").write_text("no images here")
    _one_clean_line(_submit(live_node, keyfile, corrupt))
    assert _job_count(live_node) == 0


def test_unknown_model(live_node: str, tmp_path: Path) -> None:
    keyfile = _funded(live_node, tmp_path)
    line = _one_clean_line(
        _submit(live_node, keyfile, _dataset(tmp_path / "ds"), **{"--model": "yolo-nonesuch"})
    )
    assert "UNSUPPORTED_MODEL" in line
    assert _job_count(live_node) == 0


def test_unfunded_wallet_leaves_no_job_behind(live_node: str, tmp_path: Path) -> None:
    keyfile, address = _wallet(tmp_path, "empty-wallet")
    line = _one_clean_line(_submit(live_node, keyfile, _dataset(tmp_path / "ds")))
    assert address in line and "nothing was submitted" in line
    assert _job_count(live_node) == 0


def test_version() -> None:
    result = _dcm("--version")
    assert result.exit_code == 0 and result.stdout.startswith("dcm ")
