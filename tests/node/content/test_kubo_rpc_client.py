"""kubo-rpc-client (npm, the client IPFS applications use) against a served node: add
bytes and a tree with progress, cat, ls, pins, dag export and import, blocks, refs, repo
stat, MFS, and IPNS refused in words (issue 11)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from marketplace.content import car, dag
from marketplace.content.importer import ImportOptions, import_bytes
from marketplace.content.memory import MemoryBlocks
from tests.fixtures.engines import require_engine

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = Path(__file__).parent / "js" / "kubo_client.mjs"
BIG = bytes(i % 251 for i in range(600 * 1024))


def _client_available() -> bool:
    return shutil.which("node") is not None and (ROOT / "node_modules" / "kubo-rpc-client").is_dir()


@pytest.fixture
def seen(live_node: str, writer_token: str, tmp_path: Path) -> dict:
    require_engine(_client_available(), "node and kubo-rpc-client (npm ci) are needed")
    blocks = MemoryBlocks()
    fresh = import_bytes(b"from a CAR the node never saw\n", ImportOptions(), blocks)
    car_path = tmp_path / "fresh.car"
    car_path.write_bytes(b"".join(car.write_car([fresh.cid], dag.walk(blocks.get, fresh.cid))))
    proc = subprocess.run(
        ["node", str(SCRIPT), live_node, writer_token, str(car_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["fresh_cid"] = str(fresh.cid)
    return out


def test_kubo_rpc_client_sees_a_kubo_node(seen: dict) -> None:
    assert seen["isOnline"] is True
    assert seen["id"].startswith("12D3KooW")
    # Kubo's CIDs for the same bytes (CIDv0, 256 KiB chunks)
    assert seen["helloCid"] == str(import_bytes(b"hello").cid)
    assert seen["bigCid"] == str(import_bytes(BIG).cid)


def test_add_reports_progress_for_bytes_and_trees(seen: dict) -> None:
    assert seen["bigProgress"] and seen["bigProgress"][-1][0] == len(BIG)
    by_name = {name: n for n, name in seen["treeProgress"]}
    assert by_name == {"tree/a.txt": 6, "tree/sub/b.bin": len(BIG)}
    paths = [e["path"] for e in seen["tree"]]
    assert paths == ["tree/a.txt", "tree/sub/b.bin", "tree/sub", "tree"]


def test_cat_ls_and_pins(seen: dict) -> None:
    root = next(e["cid"] for e in seen["tree"] if e["path"] == "tree")
    assert seen["cat"] == "alpha\n"
    assert [(e["name"], e["type"]) for e in seen["ls"]] == [("a.txt", "file"), ("sub", "dir")]
    assert seen["pinnedBefore"] == [root]
    assert seen["pinAdd"] == seen["pinRm"]


def test_dag_export_and_import_round_trip(seen: dict) -> None:
    root = next(e["cid"] for e in seen["tree"] if e["path"] == "tree")
    assert seen["exportBytes"] > len(BIG)
    assert seen["reimported"] == [root]
    assert seen["imported"] == [seen["fresh_cid"]]
    assert seen["importedCat"] == "from a CAR the node never saw\n"


def test_blocks_dag_get_refs_and_repo_stat(seen: dict) -> None:
    from marketplace.content.cid import RAW, Cid

    expected = Cid.of_block(b"a raw block", version=1, codec=RAW)
    assert seen["blockPut"] == str(expected)
    assert seen["blockStat"] == {"cid": str(expected), "size": len(b"a raw block")}
    assert seen["dagGetLinks"] == ["a.txt", "sub"]
    tree_cids = {e["cid"] for e in seen["tree"] if e["path"] != "tree"}
    assert tree_cids <= set(seen["refs"])
    assert seen["repoStat"]["numObjects"] > 0 and seen["repoStat"]["repoSize"] > len(BIG)


def test_mfs_and_ipns(seen: dict) -> None:
    root = next(e["cid"] for e in seen["tree"] if e["path"] == "tree")
    assert seen["filesRead"] == "hi there"
    assert seen["filesLs"] == [
        {"name": "notes", "type": "directory"},
        {"name": "tree", "type": "directory"},
    ]
    assert seen["filesStat"] == {
        "cid": str(import_bytes(b"hi there").cid),
        "size": 8,
        "type": "file",
    }
    assert seen["treeStat"] == root
    assert seen["filesLsAfterRm"] == ["notes"]
    assert "IPNS is not supported" in seen["nameError"]
