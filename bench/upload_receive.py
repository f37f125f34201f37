"""CPU and wall time of the node's own work on a dataset upload, with no HTTP around it:
`receive_upload` (multipart parse, zip read, hashing and block writes, as `dcm serve`
runs them) fed the body of a seed-000 upload in 256 KiB chunks, as uvicorn hands them
over. `bench/datasets_upload.py` measures the whole route over loopback with curl, where
the machine's noise (the disk, curl beside the node on 2 cores) hides a change of a tenth
to a quarter; this measures the code alone, in turns with a baseline checkout.

Builds a `--mib` MiB detection dataset (as `bench/datasets_upload.py` does) and its two
upload bodies, as many files and as one stored zip, once; then times `--runs` receipts of
each body, each run after one unmeasured warm-up; with `--baseline-src DIR` (say
`git worktree add /tmp/base main`) the same code from DIR, run by turns in child
processes. Prints the medians and writes bench/results/upload_receive.json.

    PYTHONPATH=. python bench/upload_receive.py [--mib 512] [--runs 5] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("files", "zip")
CHUNK = 256 * 1024


def write_bodies(dataset: Path, out: Path) -> None:
    """The multipart bodies of the upload of `dataset` as files and as one stored zip, as
    `out/<kind>.body`, with their content types in `out/content_types.json`: built once,
    read by each measuring process."""
    import httpx

    from bench.datasets_upload import zip_dataset

    archive = out / "dataset.zip"
    zip_dataset(dataset, archive)
    forms = {
        "files": [
            ("files", (p.relative_to(dataset).as_posix(), p.read_bytes()))
            for p in sorted(dataset.rglob("*"))
            if p.is_file()
        ],
        "zip": [("files", ("dataset.zip", archive.read_bytes(), "application/zip"))],
    }
    archive.unlink()
    types = {}
    for kind in KINDS:
        request = httpx.Request(
            "POST", "http://node/upload", data={"model": "yolov8n"}, files=forms.pop(kind)
        )
        (out / f"{kind}.body").write_bytes(request.read())
        types[kind] = request.headers["content-type"]
    (out / "content_types.json").write_text(json.dumps(types))


def _receive(body: bytes, content_type: str, work: Path) -> tuple[float, float]:
    """One receipt of `body` into `work`: (wall seconds, CPU seconds of the process)."""
    from starlette.requests import Request

    from node.config import UploadLimits
    from node.datasets.multipart import receive_upload

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/upload",
        "headers": [(b"content-type", content_type.encode())],
    }
    at = 0

    async def receive() -> dict:
        nonlocal at
        piece = body[at : at + CHUNK]
        at += CHUNK
        return {"type": "http.request", "body": piece, "more_body": at < len(body)}

    limits = UploadLimits(max_bytes=4 * 1024**3, max_files=100_000)
    wall, cpu = time.perf_counter(), time.process_time()
    received = asyncio.run(receive_upload(Request(scope, receive), work, limits, stage=True))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert received.staged is not None and received.body_bytes == len(body)
    shutil.rmtree(work)
    return wall, cpu


def measure(bodies: Path, runs: int) -> dict[str, list[tuple[float, float]]]:
    """`runs` timed receipts of each body under `bodies` (after a warm-up), by this
    process's code (its PYTHONPATH)."""
    types = json.loads((bodies / "content_types.json").read_text())
    out = {}
    for kind in KINDS:
        body = (bodies / f"{kind}.body").read_bytes()
        _receive(body, types[kind], bodies / "work")
        out[kind] = [_receive(body, types[kind], bodies / "work") for _ in range(runs)]
    return out


def _child(src: Path, bodies: Path, runs: int) -> dict[str, list[tuple[float, float]]]:
    """`measure` in a child process running the code of `src`."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    script = Path(__file__).resolve()
    out = subprocess.run(
        [sys.executable, str(script), "--measure", str(bodies), "--runs", str(runs)],
        env=env,
        cwd=src,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline-src", type=Path)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # a child's part
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.runs)))
        return
    sys.path.insert(0, str(ROOT))  # the bench package (a child takes the node from src)
    from bench.datasets_upload import make_dataset

    work = Path(tempfile.mkdtemp(prefix="dcm-bench-"))
    try:
        dataset = work / "dataset"
        files, nbytes = make_dataset(dataset, args.mib)
        write_bodies(dataset, work)
        shutil.rmtree(dataset)
        sources = {"this checkout": ROOT}
        if args.baseline_src:
            sources["baseline"] = args.baseline_src.resolve()
        runs: dict[str, dict[str, list]] = {name: {"files": [], "zip": []} for name in sources}
        for _ in range(args.runs):  # by turns, one run of each source at a time
            for name, src in sources.items():
                for kind, timed in _child(src, work, 1).items():
                    runs[name][kind] += timed
    finally:
        shutil.rmtree(work, ignore_errors=True)

    mib = nbytes / 1024**2
    result: dict[str, object] = {
        "dataset": {"files": files, "bytes": nbytes, "chunk_bytes": CHUNK},
        "runs": args.runs,
        "baseline": str(args.baseline_src) if args.baseline_src else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    cpu: dict[str, float] = {}
    for name, kinds in runs.items():
        for kind, timed in kinds.items():
            key = kind if name == "this checkout" else f"baseline_{kind}"
            cpu[key] = statistics.median(c for _, c in timed)
            result[f"{key}_mib_s"] = round(mib / statistics.median(w for w, _ in timed), 1)
            result[f"{key}_cpu_s"] = round(cpu[key], 2)
            result[f"{key}_cpu_s_runs"] = [round(c, 2) for _, c in timed]
    if args.baseline_src:
        for kind in KINDS:
            result[f"{kind}_cpu_vs_baseline"] = round(cpu[kind] / cpu[f"baseline_{kind}"], 3)
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / "upload_receive.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
