"""Benchmark: the mixed load of issue 12, reads and writes of one wallet at once.

`--requests` requests (default 2,000), alternately `GET /v1/jobs?limit=50` and
`POST /v1/jobs` (a small job; each creates one), from `--concurrency` keep-alive
connections (default 32) sharing one queue of requests, against a real `dcm serve` seeded
with `--jobs` jobs of the wallet (as in `bench/api.py`). SQLite always; PostgreSQL too
with `--pg URL` (a fresh database on that server). The same load then runs against a bare
Starlette app answering the node's exact bytes under the same server settings
(`bench/_bare.py`), as the machine's reference in the same run.

The client is a few lines of HTTP/1.1 over asyncio streams (no HTTP library), so that on
a small machine it takes as little CPU as possible from the server it measures; each
latency is from writing the request to reading the last byte of its answer. `--warmup`
requests (default 64, not counted) run first. An error is a status other than 200/201, or
a connection that failed.

Target (issue 12): p99 under 100 ms, no errors, on both databases.

    PYTHONPATH=. .venv/bin/python bench/mixed.py [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Prints p50/p99/max, req/s and errors per database (and per kind of request) and writes
bench/results/mixed.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import _bare as bare_app  # noqa: E402
from bench._node import Node, scratch_database  # noqa: E402
from bench.api import JOB_BODY, capture, seed_jobs, sign_in  # noqa: E402

RESULTS = REPO / "bench" / "results"
LIST_PATH = "/v1/jobs?limit=50"
CREATE_PATH = "/v1/jobs"
TARGET_P99_MS = 100.0


def raw_request(method: str, path: str, host: str, headers: dict[str, str]) -> bytes:
    body = json.dumps(JOB_BODY).encode() if method == "POST" else b""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length or chunked); its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    fields = {}
    for line in header_lines:
        if ":" in line:
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
    if "content-length" in fields:
        await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def load(url: str, requests: list[tuple[str, bytes]], concurrency: int) -> dict[str, Any]:
    """Send `requests` (kind, raw bytes) in order from `concurrency` connections; figures."""
    host, port = url.removeprefix("http://").split(":")
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    latencies: dict[str, list[float]] = {"list": [], "create": []}
    errors: dict[str, int] = {"list": 0, "create": 0}
    statuses: dict[int, int] = {}

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while not queue.empty():
                kind, raw = queue.get_nowait()
                t0 = time.perf_counter()
                try:
                    writer.write(raw)
                    status = await read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    errors[kind] += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                    continue
                latencies[kind].append((time.perf_counter() - t0) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
                if status not in (200, 201):
                    errors[kind] += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0

    def figures(values: list[float]) -> dict[str, float | None]:
        if len(values) < 2:
            return {"p50_ms": None, "p99_ms": None, "max_ms": None}
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        return {
            "p50_ms": round(cuts[49], 1),
            "p99_ms": round(cuts[98], 1),
            "max_ms": round(max(values), 1),
        }

    every = latencies["list"] + latencies["create"]
    return {
        "requests": len(requests),
        "seconds": round(elapsed, 2),
        "req_per_s": round(len(requests) / elapsed, 1),
        **figures(every),
        "errors": errors["list"] + errors["create"],
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "list": {**figures(latencies["list"]), "errors": errors["list"]},
        "create": {**figures(latencies["create"]), "errors": errors["create"]},
    }


def mix(url: str, headers: dict[str, str], count: int) -> list[tuple[str, bytes]]:
    host = url.removeprefix("http://")
    get = raw_request("GET", LIST_PATH, host, headers)
    post = raw_request("POST", CREATE_PATH, host, headers)
    return [("list", get) if i % 2 == 0 else ("create", post) for i in range(count)]


def run(url: str, headers: dict[str, str], args: Any) -> dict[str, Any]:
    asyncio.run(load(url, mix(url, headers, args.warmup), args.concurrency))
    return asyncio.run(load(url, mix(url, headers, args.requests), args.concurrency))


def one_database(database: str, server_url: str | None, args: Any) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="dcm-bench-mixed-"))
    scratch = contextlib.ExitStack()
    database_url = scratch.enter_context(scratch_database(server_url))
    node = Node(base / "node", database_url)
    bare = None
    try:
        headers = sign_in(node.url)
        with httpx.Client(base_url=node.url, headers=headers, timeout=120) as http:
            template = http.post(CREATE_PATH, json=JOB_BODY)
            template.raise_for_status()
        template_id = int(template.json()["data"]["id"].removeprefix("job_"))
        seed_jobs(
            (database_url or f"sqlite:///{base / 'node' / 'dcm.sqlite3'}").replace(
                "postgresql://", "postgresql+psycopg://"
            ),
            template_id,
            args.jobs - 1,
        )
        ours = run(node.url, headers, args)
        responses = {
            f"{m} {p}": capture(node.url, m, p, headers)
            for m, p in (("GET", LIST_PATH), ("POST", CREATE_PATH))
        }
        node.stop()
        bare, bare_url = bare_app.start(responses, base, LIST_PATH)
        baseline = run(bare_url, headers, args)
        row = {
            "database": database,
            "node": ours,
            "bare": baseline,
            "rate_vs_bare": round(ours["req_per_s"] / baseline["req_per_s"], 3),
            "meets_target": ours["p99_ms"] is not None
            and ours["p99_ms"] < TARGET_P99_MS
            and ours["errors"] == 0,
        }
        print(
            f"{database:<10} node {ours['req_per_s']:>7.1f} req/s  p50 {ours['p50_ms']} ms  "
            f"p99 {ours['p99_ms']} ms  max {ours['max_ms']} ms  errors {ours['errors']}  | "
            f"list p50/p99 {ours['list']['p50_ms']}/{ours['list']['p99_ms']} ms, "
            f"create p50/p99 {ours['create']['p50_ms']}/{ours['create']['p99_ms']} ms  | "
            f"bare {baseline['req_per_s']:.1f} req/s (p99 {baseline['p99_ms']} ms)  "
            f"ratio {row['rate_vs_bare']:.3f}  p99 target {TARGET_P99_MS:.0f} ms "
            f"{'met' if row['meets_target'] else 'NOT met'}",
            flush=True,
        )
        return row
    finally:
        if bare is not None:
            bare.terminate()
            bare.wait(10)
        node.stop()
        scratch.close()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs seeded before the load")
    parser.add_argument("--pg", default=None, help="PostgreSQL server URL (also run there)")
    parser.add_argument("--sqlite", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", type=Path, default=RESULTS / "mixed.json")
    args = parser.parse_args()
    runs = []
    if args.sqlite:
        runs.append(one_database("sqlite", None, args))
    if args.pg:
        runs.append(one_database("postgresql", args.pg, args))
    doc = {
        "benchmark": "mixed",
        "requests": args.requests,
        "mix": {"list": LIST_PATH, "create": f"POST {CREATE_PATH}", "ratio": "1:1"},
        "concurrency": args.concurrency,
        "warmup": args.warmup,
        "jobs": args.jobs,
        "cpu_cores": os.cpu_count(),
        "target_p99_ms": TARGET_P99_MS,
        "runs": {r["database"]: r for r in runs},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
