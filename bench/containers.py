"""Benchmark: what the marketplace adds around a container, against `docker run`.

For the same image and command, in the same run, on the engine DOCKER_HOST names:
(a) `docker run` (the CLI, as a user types it, `--network none`): from the command's start to
    the container's `State.StartedAt`, and from its `State.FinishedAt` to the command's return;
(b) the same container as a `container` job run by the real provider daemon against a real
    `dcm serve` on loopback: from the node's `claimed` event to the container's `StartedAt`
    (lease start, spec checks, image lookup, create with every limit, start), and from its
    `FinishedAt` to the node's `completed` event (logs drained, outputs pinned, result
    reported). Node, daemon and engine share this machine's clock.
Issue 14's target: under 1 s of overhead each way on loopback.

    DOCKER_HOST=unix://... PYTHONPATH=. .venv/bin/python bench/containers.py --repeats 5

Prints the figures and writes bench/results/containers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "containers.json"
IMAGE = os.environ.get("DCM_TEST_DOCKER_IMAGE", "localhost/busybox:latest")
SCRIPT = "echo hello; echo 42 > /outputs/result.txt"


def _engine_time(value: str) -> dt.datetime:
    """An engine timestamp (RFC 3339 with nanoseconds) as an aware datetime."""
    head, _, frac = value.rstrip("Z").partition(".")
    micro = (frac + "000000")[:6]
    return dt.datetime.fromisoformat(f"{head}.{micro}+00:00")


def _node_time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def docker_run(repeats: int) -> list[dict[str, float]]:
    """`docker run` of the image and command a job runs, timed around the CLI."""
    import docker

    cli = shutil.which("docker", path="/usr/bin") or shutil.which("docker") or "docker"
    client = docker.from_env()
    out = []
    for i in range(repeats):
        name = f"dcm-bench-plain-{os.getpid()}-{i}"
        begin = dt.datetime.now(dt.UTC)
        subprocess.run(
            [cli, "run", "--name", name, "--network", "none", "--tmpfs", "/outputs", IMAGE]
            + ["sh", "-c", SCRIPT],
            check=True,
            capture_output=True,
        )
        end = dt.datetime.now(dt.UTC)
        state = client.containers.get(name).attrs["State"]
        client.containers.get(name).remove(force=True)
        out.append(
            {
                "to_start": (_engine_time(state["StartedAt"]) - begin).total_seconds(),
                "from_exit": (end - _engine_time(state["FinishedAt"])).total_seconds(),
                "total": (end - begin).total_seconds(),
            }
        )
    return out


def marketplace_run(repeats: int, base: Path) -> list[dict[str, float]]:
    """The same container as `container` jobs through a real node and provider daemon."""
    import httpx
    from eth_account import Account

    from bench._node import served_node
    from marketplace.sdk.http import siwe_payload
    from worker.daemon import DaemonConfig, ProviderDaemon
    from worker.executors.container import ContainerExecutor

    out = []
    with served_node(base / "node") as url:
        http = httpx.Client(base_url=url, timeout=60)
        nonce = http.get("/auth/nonce").json()
        tokens = http.post("/auth/siwe", json=siwe_payload(nonce, Account.create(), "b")).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        body = {"type": "container", "payload": {"image": IMAGE, "command": ["sh", "-c", SCRIPT]}}

        def submit() -> dict[str, Any]:
            return http.post("/v1/jobs", json=body, headers=headers).json()["data"]

        first = submit()
        key = http.post(
            f"/workspaces/{first['workspaceId']}/api-keys",
            json={"name": "bench", "role": "provider"},
            headers=headers,
        ).json()["key"]
        config = DaemonConfig(
            node_url=url,
            workdir=base / "provider",
            job_types=["container"],
            claim_wait_seconds=5,
            api_keys=[key],
        )
        loop = asyncio.new_event_loop()
        holder: dict[str, Any] = {}
        ready = threading.Event()

        async def serve() -> None:
            executor = ContainerExecutor()
            async with ProviderDaemon(config, Account.create(), {"container": executor}) as d:
                holder["daemon"] = d
                ready.set()
                await d.run()

        thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
        thread.start()
        ready.wait(120)

        def wait_done(job_id: str) -> dict[str, Any]:
            for _ in range(1200):
                job = http.get(f"/v1/jobs/{job_id}", headers=headers).json()["data"]
                if job["status"] in ("completed", "failed", "cancelled"):
                    return job
                time.sleep(0.05)
            raise RuntimeError(f"{job_id} did not finish")

        jobs = [first["id"]]
        wait_done(first["id"])  # warm-up: the first run also loads the engine connection
        for _ in range(repeats):
            job_id = submit()["id"]
            jobs.append(job_id)
            job = wait_done(job_id)
            if job["status"] != "completed":
                raise RuntimeError(f"{job_id} ended {job['status']}: {job.get('error')}")
            events = http.get(f"/v1/jobs/{job_id}/events", headers=headers).json()["data"]
            at = {e["type"]: _node_time(e["createdAt"]) for e in events}
            started = _engine_time(job["result"]["started_at"])
            finished = _engine_time(job["result"]["finished_at"])
            out.append(
                {
                    "to_start": (started - at["claimed"]).total_seconds(),
                    "from_exit": (at["completed"] - finished).total_seconds(),
                    "total": (at["completed"] - at["claimed"]).total_seconds(),
                }
            )
        loop.call_soon_threadsafe(holder["daemon"].request_stop)
        thread.join(60)
    return out


def _summary(rows: list[dict[str, float]]) -> dict[str, Any]:
    return {
        key: {
            "median": round(statistics.median(r[key] for r in rows), 4),
            "min": round(min(r[key] for r in rows), 4),
            "max": round(max(r[key] for r in rows), 4),
        }
        for key in ("to_start", "from_exit", "total")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not os.environ.get("DOCKER_HOST"):
        raise SystemExit("DOCKER_HOST is not set (source .ci/provision.d/50-docker.sh)")

    base = Path(tempfile.mkdtemp(prefix="dcm-bench-containers-"))
    plain = docker_run(args.repeats)
    ours = marketplace_run(args.repeats, base)
    shutil.rmtree(base, ignore_errors=True)
    plain_s, ours_s = _summary(plain), _summary(ours)
    extra = {
        key: round(ours_s[key]["median"] - plain_s[key]["median"], 4)
        for key in ("to_start", "from_exit")
    }
    import docker

    engine = docker.from_env().version()
    result = {
        "image": IMAGE,
        "command": SCRIPT,
        "repeats": args.repeats,
        "docker_run_seconds": plain_s,
        "marketplace_seconds": ours_s,
        "marketplace_over_docker_run_seconds": extra,
        "target_seconds_each_way": 1.0,
        "meets_target": all(ours_s[k]["median"] < 1.0 for k in ("to_start", "from_exit")),
        "engine": {"version": engine.get("Version"), "api": engine.get("ApiVersion")},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "runs": {"docker_run": plain, "marketplace": ours},
    }
    print(f"image {IMAGE}, {args.repeats} runs each (medians, seconds)")
    print(f"{'':28}{'to start':>10}{'from exit':>11}{'total':>9}")
    for label, s in (("docker run", plain_s), ("claim -> completed (dcm)", ours_s)):
        print(
            f"{label:28}{s['to_start']['median']:>10.3f}{s['from_exit']['median']:>11.3f}"
            f"{s['total']['median']:>9.3f}"
        )
    print(f"dcm over docker run: {extra['to_start']:+.3f}s to start, {extra['from_exit']:+.3f}s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
