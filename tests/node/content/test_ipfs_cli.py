"""`dcm ipfs cid|add|get` against a node over loopback HTTP."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from dcm.cli import main
from marketplace.content.importer import import_path
from tests.fixtures.content import content, make_vector_tree, vectors

V = vectors()


def test_cid_prints_kubo_cids_without_storing(tmp_path: Path) -> None:
    ds = make_vector_tree(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["ipfs", "cid", str(ds)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == V["directory"]["cidv0"]
    f = tmp_path / "hello.txt"
    f.write_bytes(b"hello world\n")
    v1 = runner.invoke(main, ["ipfs", "cid", str(f), "--cid-version", "1"])
    assert v1.output.strip() == V["more"]["cidv1_raw_leaves_of_hello_world_newline"]


def test_add_then_get_round_trips_a_tree(live_node: str, writer_token: str, tmp_path: Path) -> None:
    ds = make_vector_tree(tmp_path)
    runner = CliRunner()
    added = runner.invoke(
        main, ["ipfs", "add", str(ds), "--node", live_node], env={"DCM_TOKEN": writer_token}
    )
    assert added.exit_code == 0, added.output
    last = added.output.strip().splitlines()[-1]
    assert last == f"added {V['directory']['cidv0']} ds"
    out = tmp_path / "fetched"
    got = runner.invoke(
        main, ["ipfs", "get", V["directory"]["cidv0"], str(out), "--node", live_node]
    )
    assert got.exit_code == 0, got.output
    assert str(import_path(out).cid) == V["directory"]["cidv0"]
    assert (out / "images/train/img2.png").read_bytes() == content(601000)
    again = runner.invoke(
        main, ["ipfs", "get", V["directory"]["cidv0"], str(out), "--node", live_node]
    )
    assert again.exit_code != 0 and "already exists" in again.output


def test_get_of_unknown_content_fails_cleanly(live_node: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["ipfs", "get", V["files"][4]["cidv0"], str(tmp_path / "x"), "--node", live_node]
    )
    assert result.exit_code == 1
    assert "CONTENT_NOT_FOUND" in result.output
    assert not (tmp_path / "x").exists()
