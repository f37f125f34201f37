"""Benchmark: node replicas on one PostgreSQL database (issue 16).

A Hardhat chain (the replicas need an external chain), a fresh PostgreSQL database, and
two `dcm serve` processes on it (the first deploys the escrow, the second uses it).

Part 1 (throughput): `--jobs` pending private jobs, 32 providers claiming concurrently
over HTTP (wait 0) until the queue is empty: claims/s with every provider on one replica,
then with the providers split over both; each job must be handed out exactly once.

Part 2 (pick-up latency): one idle provider long-polls a replica while a requester
creates jobs one at a time through the same replica or through the other one.
Latency = server time of the `claimed` event minus that of `created`; p50 and p90.

    PYTHONPATH=. .venv/bin/python bench/replicas.py [--pg postgresql://postgres@127.0.0.1/postgres]

Prints the figures and writes bench/results/replicas.json. Needs `npm ci` (Hardhat).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from web3 import Web3

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._claims import drain, fill_queue, provider, requester  # noqa: E402
from bench._node import scratch_database  # noqa: E402
from bench.dispatch import pct  # noqa: E402
from tests.fixtures.served import Served  # noqa: E402
from tests.marketplace.escrow.harness import HardhatNode  # noqa: E402


def _ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def throughput(
    nodes: list[Served], database: str, jobs: int, providers: int
) -> dict[str, Any]:
    queue = await fill_queue([n.url for n in nodes], jobs, providers)
    return {"replicas": len(nodes), **await drain(queue, [n.proc.pid for n in nodes], database)}


async def pickup(create_url: str, claim_url: str, samples: int) -> list[float]:
    async with (
        httpx.AsyncClient(base_url=create_url, timeout=60) as creator,
        httpx.AsyncClient(base_url=claim_url, timeout=60) as claimer,
    ):
        req_headers, workspace_id, pool_key = await requester(creator)
        prov = await provider(claimer, pool_key, max_concurrent=samples + 1)
        latencies = []
        for _ in range(samples):

            async def claim() -> dict[str, Any]:
                while True:
                    resp = await claimer.post(
                        "/v1/providers/claim",
                        headers=prov,
                        json={"job_types": ["bench"], "wait_seconds": 10},
                    )
                    if resp.status_code == 200:
                        return resp.json()["data"]

            task = asyncio.create_task(claim())
            await asyncio.sleep(0.2)  # the provider is idle, waiting on its replica
            created = await creator.post(
                "/v1/jobs",
                headers=req_headers,
                json={"type": "bench", "payload": {}, "workspaceId": workspace_id},
            )
            created.raise_for_status()
            got = await task
            job_id = got["lease"]["job_id"]
            detail = (await creator.get(f"/v1/jobs/{job_id}", headers=req_headers)).json()
            times = {e["type"]: _ts(e["createdAt"]) for e in detail["data"]["events"]}
            latencies.append((times["claimed"] - times["created"]).total_seconds() * 1000)
            await claimer.post(
                f"/v1/jobs/{job_id}/fail",
                headers=prov,
                json={"attempt": got["lease"]["attempt"], "error": "bench", "retryable": False},
            )
        return latencies


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "p50": round(statistics.median(values), 2),
        "p90": pct(values, 0.9),
        "samples": len(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--providers", type=int, default=32)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument(
        "--pg",
        default=os.environ.get("DCM_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args()
    out: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}}
    nodes: list[Served] = []
    with scratch_database(args.pg) as pg_url, tempfile.TemporaryDirectory() as tmp:
        db = pg_url.rsplit("/", 1)[1]
        hardhat = HardhatNode(Path(tmp))
        try:
            operator = Account.create()
            keyfile = Path(tmp) / "operator.json"
            keyfile.write_text(json.dumps(Account.encrypt(operator.key, "operator")))
            w3 = Web3(Web3.HTTPProvider(hardhat.url))
            w3.provider.make_request("hardhat_setBalance", [operator.address, hex(10**21)])
            env = {
                "DCM_CHAIN_RPC_URL": hardhat.url,
                "DCM_CHAIN_OPERATOR_KEYFILE": str(keyfile),
                "DCM_CHAIN_OPERATOR_PASSWORD": "operator",
                "DCM_CHAIN_ARBITER_ADDRESS": Account.create().address,
                "DCM_CHAIN_CONFIRMATIONS": "0",
                "DCM_RATE_LIMITS__ENABLED": "false",
                "DCM_LOG_LEVEL": "WARNING",
            }
            nodes.append(Served(Path(tmp) / "a", pg_url, **env))
            escrow = httpx.get(nodes[0].url + "/chain/info").json()["escrow_address"]
            nodes.append(Served(Path(tmp) / "b", pg_url, DCM_CHAIN_ESCROW_ADDRESS=escrow, **env))
            a, b = (n.url for n in nodes)
            out["throughput"] = {
                "one_replica": asyncio.run(throughput(nodes[:1], db, args.jobs, args.providers)),
                "two_replicas": asyncio.run(throughput(nodes, db, args.jobs, args.providers)),
            }
            out["pickup_latency_ms"] = {
                "same_replica": summary(asyncio.run(pickup(a, a, args.samples))),
                "cross_replica": summary(asyncio.run(pickup(a, b, args.samples))),
            }
        finally:
            for node in nodes:
                node.stop()
            hardhat.stop()
    print(json.dumps(out, indent=2))
    results = REPO / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "replicas.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
