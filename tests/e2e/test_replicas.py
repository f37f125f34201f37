"""Two node replicas (`dcm serve` processes) on one PostgreSQL database and one Hardhat
chain, with providers attached to either: funded jobs created through both are each
handed out once, wake-ups cross replicas, and when the leader is killed (SIGKILL) the
other replica takes over the chain work, sending no settlement twice and applying no
chain event twice."""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from eth_account import Account

from marketplace.datasets.synthetic import write_detection_dataset
from marketplace.sdk.client import NodeClient
from node.replicas import libpq_url
from tests.e2e.conftest import _set_balance
from tests.fixtures import web
from tests.fixtures.engines import require_engine
from tests.fixtures.keystores import keystore_json
from tests.fixtures.served import REPO, Served

JOBS = 200
PROVIDERS_PER_REPLICA = 2


def _leader(node: Served) -> bool:
    try:
        return bool(web.get(node.url + "/readyz", timeout=2).json().get("leader"))
    except httpx.HTTPError:
        return False


def _claims(paths: list[Path]) -> list[dict[str, Any]]:
    rows = []
    for index, path in enumerate(paths):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if "job_id" in row:
                row["provider"] = index
                rows.append(row)
    return rows


def _job_id(raw: Any) -> int:
    return int(str(raw).removeprefix("job_"))


@pytest.mark.postgres
@pytest.mark.engine
@pytest.mark.slow
def test_two_replicas_share_the_work_and_survive_the_leaders_death(
    tmp_path: Path, database_url: str
) -> None:
    from tests.marketplace.escrow.harness import HardhatNode, hardhat_available

    require_engine(hardhat_available(), "Hardhat not installed (npm ci at the repo root)")
    hardhat = HardhatNode(tmp_path)
    operator = Account.create()
    keyfile = tmp_path / "operator.json"
    keyfile.write_text(keystore_json(operator.key, "operator"))
    _set_balance(hardhat.url, operator.address, 10**21)
    env = {
        "DCM_CHAIN_RPC_URL": hardhat.url,
        "DCM_CHAIN_OPERATOR_KEYFILE": str(keyfile),
        "DCM_CHAIN_OPERATOR_PASSWORD": "operator",
        "DCM_CHAIN_ARBITER_ADDRESS": Account.create().address,
        "DCM_CHAIN_CONFIRMATIONS": "0",
        "DCM_CHAIN_WATCH_INTERVAL_SECONDS": "0.5",
        "DCM_CHAIN_POLICY_INTERVAL_SECONDS": "1",
        "DCM_LEADER_RETRY_SECONDS": "0.5",
        "DCM_RATE_LIMITS__ENABLED": "false",
    }
    replicas: list[Served] = []
    claimers: list[subprocess.Popen] = []
    outs: list[Path] = []
    try:
        first = Served(tmp_path / "a", database_url, **env)  # deploys the escrow, leads
        replicas.append(first)
        escrow = web.get(first.url + "/chain/info").json()["escrow_address"]
        second = Served(tmp_path / "b", database_url, DCM_CHAIN_ESCROW_ADDRESS=escrow, **env)
        replicas.append(second)
        assert _leader(first) and not _leader(second)

        for r, node in enumerate(replicas):
            for p in range(PROVIDERS_PER_REPLICA):
                out = tmp_path / f"claims-{r}-{p}.jsonl"
                out.touch()
                outs.append(out)
                claimers.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "tests.fixtures.claimer", node.url, str(out)],
                        cwd=REPO,
                        env=node.env,
                        stdout=subprocess.DEVNULL,
                        stderr=(tmp_path / f"claimer-{r}-{p}.err").open("wb"),
                    )
                )
        deadline = time.monotonic() + 60
        while not all('"ready"' in o.read_text() for o in outs):
            assert time.monotonic() < deadline, "providers did not register"
            assert all(c.poll() is None for c in claimers), "a provider exited"
            time.sleep(0.2)
        provider_replica = [r for r in range(2) for _ in range(PROVIDERS_PER_REPLICA)]

        dataset = write_detection_dataset(tmp_path / "shapes", train=2, val=1, size=32)
        requesters = [Account.create() for _ in replicas]
        for account in requesters:
            _set_balance(hardhat.url, account.address, 10**21)
        clients = [NodeClient(node.url) for node in replicas]
        for client, account in zip(clients, requesters, strict=True):
            client.sign_in(account)

        created: dict[int, int] = {}  # job id -> replica it was created and funded through
        killed_at = takeover_s = None
        killed_wall = float("inf")
        for n in range(JOBS):
            r = n % 2 if killed_at is None else 1
            job = clients[r].upload_dataset_job(
                dataset,
                model="yolov8n",
                epochs=1,
                imgsz=32,
                classes=["cat", "dog"],
                reward="0.001",
                requester_address=requesters[r].address,
                export_format="pt",
            )
            clients[r].fund(job["id"], requesters[r], rpc_url=hardhat.url)
            created[int(job["id"])] = r
            if n == JOBS // 2:  # mid-run: the leader dies without a word
                first.stop(signal.SIGKILL)
                killed_at, killed_wall = time.monotonic(), time.time()
                while not _leader(second):
                    assert time.monotonic() - killed_at < 10, "no replica took over in 10 s"
                    time.sleep(0.1)
                takeover_s = time.monotonic() - killed_at

        # every job is handed out, each once (the answer of a claim lost with the killed
        # replica returns its job to the queue when the lease runs out: a new attempt)
        deadline = time.monotonic() + 120
        while True:
            got = _claims(outs)
            if {_job_id(c["job_id"]) for c in got} >= set(created):
                break
            assert time.monotonic() < deadline, (
                f"{len(set(created) - {_job_id(c['job_id']) for c in got})} jobs never claimed"
            )
            time.sleep(0.5)
        counts = Counter(_job_id(c["job_id"]) for c in got)
        assert [j for j, k in counts.items() if k > 1] == []
        by_replica = Counter(provider_replica[c["provider"]] for c in got)
        assert by_replica[0] > 0 and by_replica[1] > 0  # providers on both replicas worked

        # pick-up latency: the job turned pending (the leader applied the deposit) ->
        # claimed, by whether the provider sat on the replica that led (applied it) then
        url = libpq_url(database_url)
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT job_id, "
                "min(created_at) FILTER (WHERE from_status = 'awaiting_funding' "
                "AND to_status = 'pending'), min(created_at) FILTER (WHERE type = 'claimed') "
                "FROM job_events GROUP BY job_id"
            ).fetchall()
        opened_claimed = {job_id: (o, c) for job_id, o, c in rows}
        same, cross = [], []
        for c in got:
            opened, claimed = opened_claimed[_job_id(c["job_id"])]
            ms = (claimed - opened).total_seconds() * 1000
            leader_then = 0 if c["at"] < killed_wall else 1
            (same if provider_replica[c["provider"]] == leader_then else cross).append(ms)

        # the chain work went on in the survivor: every deposit refunded once
        deadline = time.monotonic() + 120
        while True:
            with psycopg.connect(url) as conn:
                refunded = conn.execute(
                    "SELECT count(DISTINCT job_id) FROM chain_events WHERE event = 'JobSettled'"
                ).fetchone()[0]
            if refunded >= JOBS:
                break
            assert time.monotonic() < deadline, f"{refunded}/{JOBS} deposits refunded"
            time.sleep(1)
        with psycopg.connect(url) as conn:
            twice_applied = conn.execute(
                "SELECT job_id, event, count(*) FROM chain_events WHERE event IN "
                "('JobFunded', 'JobSettled') GROUP BY job_id, event HAVING count(*) > 1"
            ).fetchall()
            settled_twice = conn.execute(
                "SELECT job_key FROM chain_events WHERE event = 'JobSettled' "
                "GROUP BY job_key HAVING count(*) > 1"
            ).fetchall()
            sent_twice = conn.execute(
                "SELECT job_id, action, count(*) FROM chain_outbox "
                "WHERE status IN ('confirmed', 'failed') AND action IN ('refund', 'finalize') "
                "GROUP BY job_id, action HAVING count(*) > 1"
            ).fetchall()
            failed = conn.execute(
                "SELECT count(*) FROM chain_outbox WHERE status = 'failed'"
            ).fetchone()[0]
            opened_twice = conn.execute(
                "SELECT job_id FROM job_events WHERE from_status = 'awaiting_funding' "
                "AND to_status = 'pending' GROUP BY job_id HAVING count(*) > 1"
            ).fetchall()
        assert twice_applied == []
        assert sent_twice == []
        assert settled_twice == []
        assert failed == 0
        assert opened_twice == []
        print(
            f"\nreplicas: {len(got)} claims of {JOBS} jobs; providers on replica 0/1: "
            f"{by_replica[0]}/{by_replica[1]}; leader takeover after SIGKILL {takeover_s:.2f} s; "
            f"pick-up p50 same replica {statistics.median(same):.1f} ms ({len(same)}), "
            f"cross replica {statistics.median(cross):.1f} ms ({len(cross)})"
        )
    finally:
        for out in outs:
            out.with_suffix(".stop").touch()
        for proc in claimers:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for node in replicas:
            node.stop()
        hardhat.stop()
