"""Benchmark: the node's read, write and list paths against a bare Starlette app that
answers the same bytes under the same server settings, measured with wrk.

A real `dcm serve` (SQLite by default, `--pg URL` for PostgreSQL) is seeded with `--jobs`
jobs of one wallet (one made through `POST /v1/jobs`, the rest copied from its rows in bulk,
events included). Each path is first fetched once: the node's exact answer (status, content
type, body) is what the bare app (`bench/_bare.py`, same uvicorn settings as `dcm serve`)
returns for it. Then wrk (`--connections`, default 32; `--threads`; `--seconds` per run)
loads the node and the bare app in turn, path by path:

- `GET /v1/jobs/{id}` with the wallet's token;
- `GET /v1/jobs?limit=50`: the first page, and a page `--deep` items into the cursor walk;
- `POST /v1/jobs` (a small job; each request creates one);
- the seed 001 list, `GET /workspace/{id}/jobs?page=1&limit=50`;
- `GET /healthz`.

Targets (issue 12, as ratios to bare): by-id >= 0.4, list >= 0.25, /healthz >= 0.8, the deep
page within 1.3x of the first page's rate, POST >= 0.15.

The reads are asked again and again with nothing committed in between, so the node
answers them from its read cache (`node.readcache`). The `_uncached` rows measure the
by-id and the two lists again on a node started with the cache off: what a read costs
when something was committed since it was last asked.

    PYTHONPATH=. .venv/bin/python bench/api.py [--pg postgresql://postgres@127.0.0.1/postgres]

Needs `wrk` (Debian: `apt-get install wrk`). Prints a table and writes bench/results/api.json
(`api-pg.json` with `--pg`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import _bare as bare_app  # noqa: E402
from bench._node import Node, scratch_database  # noqa: E402
from marketplace.sdk.http import siwe_payload  # noqa: E402

RESULTS = REPO / "bench" / "results"
TARGETS = {"by_id": 0.4, "list_first": 0.25, "list_deep": 0.25, "post": 0.15, "seed001_list": 0.25}
TARGETS["healthz"] = 0.8
UNCACHED = ("by_id_uncached", "list_first_uncached", "seed001_list_uncached")
JOB_BODY = {"type": "bench", "payload": {"n": 1}, "priority": "normal"}


def sign_in(url: str) -> dict[str, str]:
    with httpx.Client(base_url=url, timeout=60) as http:
        nonce = http.get("/auth/nonce").json()
        account = Account.create()
        tokens = http.post("/auth/siwe", json=siwe_payload(nonce, account, "bench")).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def seed_jobs(database_url: str, template_id: int, count: int) -> None:
    """`count` copies of job `template_id` and of its events, inserted in bulk."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    meta = sa.MetaData()
    meta.reflect(engine, only=["jobs", "job_events"])
    jobs, events = meta.tables["jobs"], meta.tables["job_events"]
    with engine.begin() as conn:
        job = dict(conn.execute(sa.select(jobs).where(jobs.c.id == template_id)).mappings().one())
        evs = [
            dict(e)
            for e in conn.execute(sa.select(events).where(events.c.job_id == template_id))
            .mappings()
            .all()
        ]
    job.pop("id")
    for e in evs:
        e.pop("id")
    batch = 5000
    created = job["created_at"]
    for start in range(0, count, batch):
        n = min(batch, count - start)
        with engine.begin() as conn:
            first = conn.execute(sa.select(sa.func.max(jobs.c.id))).scalar_one() + 1
            stamps = [created.replace(microsecond=(start + i) % 1_000_000) for i in range(n)]
            conn.execute(jobs.insert(), [{**job, "created_at": t} for t in stamps])
            conn.execute(
                events.insert(),
                [{**e, "job_id": first + i} for i in range(n) for e in evs],
            )
    if engine.dialect.name == "postgresql":
        # What autovacuum does within a minute of such inserts (its insert threshold): the
        # visibility map and statistics. Measured straight after a bulk insert, every
        # count and index-only scan would visit all 100,000 heap rows.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE jobs, job_events"))
    engine.dispose()


def capture(url: str, method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    body = json.dumps(JOB_BODY) if method == "POST" else None
    hdrs = {**headers, **({"Content-Type": "application/json"} if body else {})}
    resp = httpx.request(method, url + path, headers=hdrs, content=body, timeout=60)
    if resp.status_code >= 400:
        raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:300]}")
    return {
        "status": resp.status_code,
        "content_type": resp.headers.get("content-type", "application/json"),
        "body": resp.text,
    }


def wrk(
    url: str, method: str, path: str, headers: dict[str, str], args: Any, workdir: Path
) -> dict[str, Any]:
    script = workdir / f"wrk-{uuid.uuid4().hex}.lua"
    lines = [f'wrk.method = "{method}"']
    for key, value in headers.items():
        lines.append(f'wrk.headers["{key}"] = "{value}"')
    if method == "POST":
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(f"wrk.body = {json.dumps(json.dumps(JOB_BODY))}")
    script.write_text("\n".join(lines) + "\n")
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections)]
    cmd += ["-d", f"{args.seconds}s", "--latency", "-s", str(script), url + path]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)

    def pct(p: str) -> float | None:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return None
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return round(float(m.group(1)) * scale, 2)

    return {
        "req_per_s": rate,
        "p50_ms": pct("50"),
        "p99_ms": pct("99"),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(0) if errors else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--deep", type=int, default=50_000, help="items into the cursor walk")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pg", default=None, help="PostgreSQL server URL (default: SQLite)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--only", default=None, help="comma-separated rows to run (e.g. by_id,healthz)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    out = args.out or RESULTS / ("api-pg.json" if args.pg else "api.json")

    base = Path(tempfile.mkdtemp(prefix="dcm-bench-api-"))
    scratch = contextlib.ExitStack()
    database_url = scratch.enter_context(scratch_database(args.pg))
    node = Node(base / "node", database_url)
    bare = None
    try:
        headers = sign_in(node.url)
        http = httpx.Client(base_url=node.url, headers=headers, timeout=120)
        workspace_id = http.post("/workspaces", json={"name": "bench"}).json()["id"]
        template = http.post("/v1/jobs", json={**JOB_BODY, "workspaceId": workspace_id})
        template.raise_for_status()
        template_id = int(template.json()["data"]["id"].removeprefix("job_"))
        t0 = time.perf_counter()
        seed_jobs(
            (database_url or f"sqlite:///{base / 'node' / 'dcm.sqlite3'}").replace(
                "postgresql://", "postgresql+psycopg://"
            ),
            template_id,
            args.jobs - 1,
        )
        seeded_seconds = time.perf_counter() - t0
        # the cursor `--deep` items in (walked with the API itself, 100 at a time)
        cursor, walked = None, 0
        while walked < args.deep:
            query = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = http.get("/v1/jobs", params=query).json()
            cursor, walked = page["pagination"]["nextCursor"], walked + len(page["data"])
        http.close()
        middle = template_id + args.jobs // 2
        paths = {
            "by_id": ("GET", f"/v1/jobs/job_{middle}", headers),
            "list_first": ("GET", "/v1/jobs?limit=50", headers),
            "list_deep": ("GET", f"/v1/jobs?limit=50&cursor={cursor}", headers),
            "post": ("POST", "/v1/jobs", headers),
            "seed001_list": ("GET", f"/workspace/{workspace_id}/jobs?page=1&limit=50", headers),
            "healthz": ("GET", "/healthz", {}),
        }
        responses = {f"{m} {p}": capture(node.url, m, p, h) for m, p, h in paths.values()}
        bare, bare_url = bare_app.start(responses, base, "/healthz")

        rows: dict[str, Any] = {}
        only = set(args.only.split(",")) if args.only else set(paths) | set(UNCACHED)

        def measure(name: str, method: str, path: str, hdrs: dict[str, str]) -> None:
            ours = wrk(node.url, method, path, hdrs, args, base)
            baseline = wrk(bare_url, method, path, hdrs, args, base)
            ratio = ours["req_per_s"] / baseline["req_per_s"]
            target = TARGETS[name.removesuffix("_uncached")]
            rows[name] = {
                "path": f"{method} {path if len(path) < 80 else path[:77] + '...'}",
                "node": ours,
                "bare": baseline,
                "ratio": round(ratio, 3),
                "target": target,
                "meets_target": ratio >= target,
            }
            print(
                f"{name:<21} node {ours['req_per_s']:>8.1f} req/s (p50 {ours['p50_ms']} ms, "
                f"p99 {ours['p99_ms']} ms)  bare {baseline['req_per_s']:>8.1f}  "
                f"ratio {ratio:.3f} (target {target})",
                flush=True,
            )

        for name, (method, path, hdrs) in paths.items():
            if name in only:
                measure(name, method, path, hdrs)
        # The same reads with the read cache off (`DCM_READ_CACHE_ENTRIES=0`): what each
        # costs when something was committed since the last time it was asked.
        if only & set(UNCACHED):
            node.stop()
            node = Node(base / "node", database_url, DCM_READ_CACHE_ENTRIES="0")
            for name in UNCACHED:
                if name in only:
                    measure(name, *paths[name.removesuffix("_uncached")])
        deep_vs_first = (
            rows["list_deep"]["node"]["req_per_s"] / rows["list_first"]["node"]["req_per_s"]
            if {"list_deep", "list_first"} <= rows.keys()
            else float("nan")
        )
        doc = {
            "benchmark": "api",
            "database": "postgresql" if args.pg else "sqlite",
            "jobs": args.jobs,
            "seeded_seconds": round(seeded_seconds, 1),
            "deep_items": args.deep,
            "wrk": {"connections": args.connections, "threads": args.threads},
            "seconds_per_run": args.seconds,
            "cpu_cores": os.cpu_count(),
            "rows": rows,
            "deep_page_rate_vs_first": round(deep_vs_first, 3),
            "deep_page_within_1_3x": deep_vs_first >= 1 / 1.3,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"deep page at {deep_vs_first:.3f} of the first page's rate; wrote {out}")
    finally:
        if bare is not None:
            bare.terminate()
            bare.wait(10)
        node.stop()
        scratch.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
