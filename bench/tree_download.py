"""Benchmark of fetching a tree of many small files from a node (issue 11: 4,500 small
files took 19 s through the SDK, one `ls` per directory and one `cat` per file, against
3.8 s for one `dag/export` CAR).

Against a `dcm serve` process on the embedded store: the SDK's `download_directory` (one
CAR, every block verified, written from the root down) vs the old way, measured in the
same run (an `ls` per directory, a `cat` per file, then a re-add to check the CID).

    PYTHONPATH=. .venv/bin/python bench/tree_download.py [--files 4500]

Writes bench/results/tree_download.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from marketplace.content.importer import import_path  # noqa: E402
from marketplace.sdk.client import NodeClient  # noqa: E402
from tests.fixtures.served import Served, run_dcm  # noqa: E402


def file_by_file(client: NodeClient, cid: str, out: Path) -> None:
    """The SDK's download before issue 11."""
    out.mkdir(parents=True, exist_ok=True)
    for link in client.ls(cid):
        target = out / link.name
        if link.type == 1:
            file_by_file(client, link.hash, target)
        else:
            target.write_bytes(client.cat(link.hash))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=4500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tree = work / "tree"
        for i in range(args.files):
            d = tree / f"d{i // 100:03d}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i:05d}.txt").write_bytes(f"file {i}\n".encode() * 20)
        node = Served(work / "node", None)
        try:
            user = "bench-user"
            run_dcm(["user", "create", user, "--password-stdin"], node.env, stdin="bench-pass-1\n")
            token = httpx.post(
                node.url + "/auth/login", json={"username": user, "password": "bench-pass-1"}
            ).json()["access_token"]
            client = NodeClient(node.url, token=token)
            cid = client.request(
                "POST",
                "/api/v0/add",
                files=[("file", ("tree", b"", "application/x-directory"))]
                + [
                    (
                        "file",
                        (
                            p.relative_to(work).as_posix(),
                            p.read_bytes(),
                            "application/octet-stream",
                        ),
                    )
                    for p in sorted(tree.rglob("*.txt"))
                ],
                params={"wrap-with-directory": "false"},
                timeout=None,
            ).text.splitlines()[-1]
            cid = json.loads(cid)["Hash"]
            assert cid == str(import_path(tree).cid)

            t = time.perf_counter()
            client.download_directory(cid, work / "car")
            car_s = time.perf_counter() - t
            assert str(import_path(work / "car").cid) == cid

            t = time.perf_counter()
            file_by_file(client, cid, work / "old")
            assert str(import_path(work / "old").cid) == cid
            old_s = time.perf_counter() - t
            client.close()
        finally:
            node.stop()
    result = {
        "files": args.files,
        "car_download_seconds": round(car_s, 2),
        "file_by_file_seconds": round(old_s, 2),
        "ratio": round(car_s / old_s, 3),
        "machine": platform.machine(),
    }
    print(json.dumps(result, indent=2))
    (ROOT / "bench" / "results" / "tree_download.json").write_text(
        json.dumps(result, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
