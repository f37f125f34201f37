"""The claim benchmarks' shared setup and claim loop (`bench/dispatch.py`, `bench/replicas.py`).

Setup: a requester signs in with a wallet, makes a workspace and a `provider` API key, and
fills the queue with private jobs of that workspace; each provider signs in with its own
wallet and joins the pool with the key (as `dcm provider run --api-key` does).

The claim loop is what is measured, so its client must cost little next to the node it
measures (2 cores hold the client, the node and PostgreSQL): each provider claims over one
keep-alive HTTP/1.1 connection written and read directly on asyncio streams. The figures
include the CPU seconds the client, each node and PostgreSQL spent while the queue drained,
so a reader can tell which of them bounds the rate.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account

from marketplace.sdk.http import siwe_payload


async def wallet_session(http: httpx.AsyncClient) -> tuple[Any, dict[str, str]]:
    account = Account.create()
    nonce = (await http.get("/auth/nonce")).json()
    resp = await http.post("/auth/siwe", json=siwe_payload(nonce, account, "bench"))
    if resp.status_code != 200:
        raise RuntimeError(f"sign-in failed: {resp.status_code} {resp.text}")
    tokens = resp.json()
    return account, {"Authorization": f"Bearer {tokens['access_token']}"}


async def requester(http: httpx.AsyncClient) -> tuple[dict[str, str], int, str]:
    """A requester's session, its workspace, and a `provider` key of that workspace."""
    _account, headers = await wallet_session(http)
    resp = await http.post("/workspaces", headers=headers, json={"name": "bench"})
    resp.raise_for_status()
    workspace_id = resp.json()["id"]
    resp = await http.post(
        f"/workspaces/{workspace_id}/api-keys",
        headers=headers,
        json={"name": "bench pool", "role": "provider"},
    )
    resp.raise_for_status()
    return headers, workspace_id, resp.json()["key"]


async def provider(
    http: httpx.AsyncClient, pool_key: str, max_concurrent: int = 1
) -> dict[str, str]:
    """A provider of job type `bench` in the pool of `pool_key`; its session's headers."""
    _account, headers = await wallet_session(http)
    resp = await http.post(
        "/v1/providers",
        headers=headers,
        json={
            "name": "bench",
            "job_types": ["bench"],
            "max_concurrent": max_concurrent,
            "api_keys": [pool_key],
        },
    )
    if resp.status_code != 201:
        raise RuntimeError(f"register failed: {resp.status_code} {resp.text}")
    return headers


@dataclass
class Queue:
    """Pending jobs and the providers that will drain them (each with its node's URL)."""

    job_ids: list[str]
    providers: list[tuple[str, dict[str, str]]]


async def fill_queue(urls: list[str], jobs: int, providers: int) -> Queue:
    """`jobs` pending private jobs (created round-robin over the nodes at `urls`) and
    `providers` providers admitted to their pool (spread the same way)."""
    clients = [httpx.AsyncClient(base_url=u, timeout=120) for u in urls]
    try:
        req_headers, workspace_id, pool_key = await requester(clients[0])
        gate = asyncio.Semaphore(8)

        async def create(n: int) -> str:
            async with gate:
                resp = await clients[n % len(clients)].post(
                    "/v1/jobs",
                    headers=req_headers,
                    json={"type": "bench", "payload": {}, "workspaceId": workspace_id},
                )
            resp.raise_for_status()
            return str(resp.json()["data"]["id"])

        ids = list(await asyncio.gather(*(create(n) for n in range(jobs))))
        provs = []
        for n in range(providers):
            http = clients[n % len(clients)]
            provs.append((urls[n % len(urls)], await provider(http, pool_key, min(jobs, 256))))
        return Queue(ids, provs)
    finally:
        for c in clients:
            await c.aclose()


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads the answer: just what
    the claim loop needs (the node answers with Content-Length, or 204 without a body)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        self.head = (
            f"Host: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        )
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        data = json.dumps(body).encode()
        self.writer.write(
            f"POST {path} HTTP/1.1\r\n{self.head}Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        if "chunked" in fields.get("transfer-encoding", ""):
            raise RuntimeError("chunked answers are not expected from the claim route")
        length = int(fields.get("content-length", "0"))
        payload = await self.reader.readexactly(length) if length else b""
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, json.loads(payload) if payload else None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process so far (Linux /proc); 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_pids(database: str) -> list[int]:
    """The PostgreSQL backends serving `database` (their process titles name it)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {database} " in title:
            out.append(int(entry.name))
    return out


async def drain(queue: Queue, node_pids: list[int], database: str | None) -> dict[str, Any]:
    """Every provider claims (wait 0) until it is answered 204; claims/s, whether each
    job was handed out exactly once (attempt 1), and who spent the CPU meanwhile."""
    claimed: list[tuple[str, int]] = []

    async def run(url: str, headers: dict[str, str]) -> None:
        conn = Connection(url, headers)
        try:
            while True:
                status, body = await conn.post(
                    "/v1/providers/claim", {"job_types": ["bench"], "wait_seconds": 0}
                )
                if status == 204:
                    return
                if status != 200:
                    raise RuntimeError(f"claim answered {status}: {body}")
                lease = body["data"]["lease"]
                claimed.append((lease["job_id"], lease["attempt"]))
        finally:
            conn.close()

    pg_before = {p: cpu_seconds(p) for p in postgres_pids(database)} if database else {}
    node_before = [cpu_seconds(p) for p in node_pids]
    client_before = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(run(url, headers) for url, headers in queue.providers))
    elapsed = time.perf_counter() - started
    client_cpu = time.process_time() - client_before
    node_cpu = [cpu_seconds(p) - b for p, b in zip(node_pids, node_before, strict=True)]
    # backends the nodes' pools opened meanwhile count from zero
    pg_after = {p: cpu_seconds(p) for p in postgres_pids(database)} if database else {}
    pg_cpu = sum(after - pg_before.get(p, 0.0) for p, after in pg_after.items())
    handed = [job_id for job_id, _ in claimed]
    return {
        "jobs": len(queue.job_ids),
        "providers": len(queue.providers),
        "claims": len(claimed),
        "seconds": round(elapsed, 3),
        "claims_per_second": round(len(claimed) / elapsed, 1),
        "double_claims": len(handed) - len(set(handed)),
        "all_claimed_once": sorted(handed) == sorted(queue.job_ids)
        and all(attempt == 1 for _, attempt in claimed),
        # CPU seconds while the queue drained; each against `seconds` says who was busy
        "cpu_seconds": {
            "client": round(client_cpu, 2),
            "nodes": [round(s, 2) for s in node_cpu],
            "postgresql": round(pg_cpu, 2),
        },
        "machine_load_1m": round(os.getloadavg()[0], 2),
    }
