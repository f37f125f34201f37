"""Several node replicas on one database (`node.replicas`, `node.pgnotify`): the leader
election that runs the singleton services, the wake-ups that cross processes, the
migration lock, and the refusal of a second node on single-node engines."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from node.config import NodeSettings
from node.db import make_engine
from node.notifier import CLAIMABLE, Notifier, job_topic
from node.pgnotify import PEER_CHECK_SECONDS, PgWakeBridge, payloads
from node.replicas import (
    LEADER_KEY,
    LeaderElection,
    ReplicaConflict,
    claim_data_dir,
    libpq_url,
)
from node.schema import missing_revisions
from tests.fixtures import web
from tests.fixtures.app import create_app
from tests.fixtures.db import drop_database, empty_database
from tests.fixtures.keystores import keystore_json
from tests.fixtures.served import REPO, dcm_env


async def _until(predicate, seconds: float = 15.0) -> bool:
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def _terminate_lock_holder(url: str) -> int:
    """Kill (server side) the session that holds the leader lock in this test's database;
    return its pid. Advisory locks are per database and pg_locks lists every database's:
    other xdist workers' nodes hold the same key in theirs."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        pid = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND objid = %s AND classid = %s",
            (LEADER_KEY & 0xFFFFFFFF, LEADER_KEY >> 32),
        ).fetchone()[0]
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return pid


@pytest.mark.postgres
def test_one_leader_at_a_time_and_takeover_when_its_session_dies(database_url: str) -> None:
    log: list[tuple[str, str]] = []

    def election(name: str) -> LeaderElection:
        async def elected() -> None:
            log.append((name, "elected"))

        async def deposed() -> None:
            log.append((name, "deposed"))

        return LeaderElection(database_url, elected, deposed, retry_seconds=0.1)

    async def main() -> None:
        a, b = election("a"), election("b")
        await a.start()
        await b.start()
        await asyncio.sleep(0.5)  # b retried several times meanwhile
        assert (a.leader, b.leader) == (True, False)
        assert log == [("a", "elected")]

        _terminate_lock_holder(database_url)  # a's lock connection dies, a lives on
        assert await _until(lambda: b.leader)
        assert await _until(lambda: not a.leader)
        assert not (a.leader and b.leader)
        assert ("a", "deposed") in log and ("b", "elected") in log

        await b.stop()  # a clean stop releases the lock: a takes over again
        assert await _until(lambda: a.leader)
        await a.stop()
        assert log[-1] == ("a", "deposed")

    asyncio.run(main())


@pytest.mark.postgres
def test_wake_ups_cross_replicas(database_url: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        here, there = Notifier(), Notifier()
        here.bind(loop)
        there.bind(loop)
        bridges = [PgWakeBridge(database_url, here), PgWakeBridge(database_url, there)]
        for bridge in bridges:
            bridge.start()
        try:
            assert await _until(lambda: all(b.connected.is_set() for b in bridges))
            heard: list[str] = []
            there.listen("webhooks", lambda: heard.append("webhooks"))

            seen = there.generation
            waiting = asyncio.create_task(there.wait(seen, 10.0))
            here.notify(CLAIMABLE)  # a job opened through the other replica
            await asyncio.wait_for(waiting, 10.0)
            assert there.generation == seen + 1

            with there.watching(job_topic(7)):
                seen = there.generation_of(job_topic(7))
                here.notify(job_topic(7), "webhooks")
                await there.wait(seen, 10.0, job_topic(7))
                assert there.generation_of(job_topic(7)) == seen + 1
            assert await _until(lambda: heard == ["webhooks"])

            # the sender does not hear itself twice: one local bump per notify
            before = here.generation
            here.notify(CLAIMABLE)
            await asyncio.sleep(0.3)
            assert here.generation == before + 1

            # a draining provider's polls end on every replica
            here.end_polls("0xprovider")
            assert await _until(lambda: there.poll_ended("0xprovider", 0.0))
        finally:
            for bridge in bridges:
                bridge.stop()

    asyncio.run(main())


@pytest.mark.postgres
def test_a_lone_replica_sends_no_wake_ups_until_another_listens() -> None:
    """Nobody else listens: the bridge sends no NOTIFY (its own waiters were woken
    in-process). A second replica's listener says hello as it connects, and from then on
    each replica's wake-ups reach the other. A database of its own: other tests' bridges
    listen on the shared one."""
    url = empty_database()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        here, there = Notifier(), Notifier()
        here.bind(loop)
        there.bind(loop)
        alone = PgWakeBridge(url, here)
        alone.start()
        other = PgWakeBridge(url, there)
        try:
            assert await _until(alone.connected.is_set)
            for _ in range(5):
                here.notify(CLAIMABLE)
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            assert alone.sent == 0
            assert here.generation == 5  # woken in-process all the same

            other.start()
            assert await _until(other.connected.is_set)
            # its hello makes the first replica count again; a wake-up sent before that
            # count reaches nobody, and the next count is at most PEER_CHECK_SECONDS away
            seen = there.generation

            def heard() -> bool:
                if there.generation == seen:
                    here.notify(CLAIMABLE)
                return there.generation > seen

            assert await _until(heard, 1.0 + 4 * PEER_CHECK_SECONDS)
            assert alone.sent >= 1

            seen = here.generation
            waiting = asyncio.create_task(here.wait(seen, 10.0))
            there.notify(CLAIMABLE)
            await asyncio.wait_for(waiting, 10.0)
        finally:
            alone.stop()
            other.stop()

    try:
        asyncio.run(main())
    finally:
        drop_database(url)


def test_notify_payloads_stay_under_the_postgres_limit() -> None:
    topics = [["job", n] for n in range(3000)]
    chunks = payloads("origin", topics)
    assert len(chunks) > 1
    assert all(len(c) < 8000 for c in chunks)

    assert [t for c in chunks for t in json.loads(c)["t"]] == topics


@pytest.mark.postgres
def test_concurrent_upgrades_migrate_once(tmp_path: Path) -> None:
    """`dcm db upgrade` started by three replicas at once on an empty database: one
    migrates, the others wait on the migration lock and find nothing to do."""
    url = empty_database()
    try:
        env = dcm_env(tmp_path, url)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "dcm.cli", "db", "upgrade"],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [p.communicate(timeout=120)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], outputs
        engine = make_engine(url, poolclass=None)
        assert missing_revisions(engine) == set()
        engine.dispose()
    finally:
        drop_database(url)


def test_second_node_on_one_data_dir_is_refused(tmp_path: Path) -> None:
    first = claim_data_dir(tmp_path, "embedded SQLite database")
    with pytest.raises(ReplicaConflict, match="another node is running"):
        claim_data_dir(tmp_path, "embedded SQLite database")
    first.close()
    claim_data_dir(tmp_path, "embedded SQLite database").close()  # free again


def test_second_app_on_sqlite_data_dir_refuses_to_start(settings: NodeSettings) -> None:
    if settings.sqlalchemy_url.startswith("postgresql"):
        settings = NodeSettings(data_dir=settings.data_dir, environment="development")
    with TestClient(create_app(settings)) as first:
        assert first.get("/healthz").status_code == 200
        with pytest.raises(ReplicaConflict), TestClient(create_app(settings)):
            pass
    with TestClient(create_app(settings)) as again:  # the first one stopped: free
        assert again.get("/healthz").status_code == 200


@pytest.mark.postgres
def test_two_apps_on_postgres_run_the_loop_services_in_one(settings: NodeSettings) -> None:
    """Replicas on PostgreSQL (an embedded chain is one process's: only external chains
    may have several replicas, so the second app here refuses, and that is the check)."""
    with TestClient(create_app(settings)) as first:
        assert first.app.state.runtime.is_leader
        other = settings.model_copy(update={"data_dir": settings.data_dir.parent / "other"})
        with pytest.raises(ReplicaConflict, match="embedded chain"), TestClient(create_app(other)):
            pass


@pytest.mark.postgres
def test_work_through_one_replica_wakes_claims_and_streams_on_another(
    settings: NodeSettings, tmp_path: Path
) -> None:
    """Two replicas (external chain) in one process, each served over HTTP. Their fallback
    re-checks (claims, streams) are set to 5 minutes, so within the test's minute only a
    NOTIFY from the other replica can hand the long-poll its job or stream the event."""
    import queue
    import threading

    from eth_account import Account
    from pydantic import SecretStr
    from web3 import Web3

    from tests.fixtures.engines import require_engine
    from tests.fixtures.jobflow import signed_in
    from tests.fixtures.live import served_in_thread
    from tests.marketplace.escrow.harness import HardhatNode, hardhat_available

    require_engine(hardhat_available(), "Hardhat not installed (npm ci at the repo root)")
    hardhat = HardhatNode(tmp_path)
    try:
        operator = Account.create()
        keyfile = tmp_path / "operator.json"
        keyfile.write_text(keystore_json(operator.key, "pw"))
        Web3(Web3.HTTPProvider(hardhat.url)).provider.make_request(
            "hardhat_setBalance", [operator.address, hex(10**20)]
        )
        base = settings.model_copy(
            update={
                "chain_rpc_url": hardhat.url,
                "chain_operator_keyfile": keyfile,
                "chain_operator_password": SecretStr("pw"),
                "chain_arbiter_address": Account.create().address,
                "leases": settings.leases.model_copy(
                    update={"claim_poll_seconds": 300, "claim_wait_max_seconds": 300}
                ),
                "events": settings.events.model_copy(
                    update={"stream_heartbeat_seconds": 300, "stream_max_seconds": 300}
                ),
            }
        )
        with served_in_thread(create_app(base)) as a:
            escrow = web.get(a + "/chain/info", timeout=60).json()["escrow_address"]
            other = base.model_copy(
                update={"data_dir": tmp_path / "b", "chain_escrow_address": escrow}
            )
            with served_in_thread(create_app(other)) as b:
                _claims_and_streams_cross(a, b, queue, threading, signed_in)
    finally:
        hardhat.stop()


def _claims_and_streams_cross(a: str, b: str, queue: Any, threading: Any, signed_in: Any) -> None:
    import httpx

    on_a = httpx.Client(base_url=a, timeout=60)
    on_b = httpx.Client(base_url=b, timeout=400)  # longer than the waits it must not reach
    requester, _ = signed_in(a)
    first = on_a.post("/v1/jobs", json={"type": "bench", "payload": {}}, headers=requester)
    assert first.status_code == 201, first.text
    workspace = first.json()["data"]["workspaceId"]
    key = on_a.post(
        f"/workspaces/{workspace}/api-keys",
        json={"name": "pool", "role": "provider"},
        headers=requester,
    ).json()["key"]
    provider, _ = signed_in(b)
    reg = on_b.post(
        "/v1/providers",
        json={"name": "p", "job_types": ["bench"], "api_keys": [key], "max_concurrent": 4},
        headers=provider,
    )
    assert reg.status_code == 201, reg.text
    assert on_b.post("/v1/providers/claim", json={}, headers=provider).status_code == 200

    answers: Any = queue.Queue()

    def long_poll() -> None:
        resp = on_b.post("/v1/providers/claim", json={"wait_seconds": 300}, headers=provider)
        answers.put(resp)

    poller = threading.Thread(target=long_poll)
    poller.start()
    time.sleep(0.5)  # waiting on replica b
    second = on_a.post("/v1/jobs", json={"type": "bench", "payload": {}}, headers=requester)
    poller.join(60)
    assert not poller.is_alive(), "the job created through a never reached b's long-poll"
    resp = answers.get_nowait()
    assert resp.status_code == 200, resp.text
    lease = resp.json()["data"]["lease"]
    assert lease["job_id"] == second.json()["data"]["id"]

    # a follower on b sees the progress the provider writes through a
    lines: Any = queue.Queue()

    def follow() -> None:
        with on_b.stream(
            "GET", f"/v1/jobs/{lease['job_id']}/events?follow=true", headers=requester
        ) as stream:
            for line in stream.iter_lines():
                lines.put(line)
        lines.put(None)

    follower = threading.Thread(target=follow)
    follower.start()
    time.sleep(0.5)
    body = {"attempt": lease["attempt"], "percent": 42, "message": "through a"}
    assert (
        on_a.post(f"/v1/jobs/{lease['job_id']}/progress", json=body, headers=provider).status_code
        == 200
    )
    seen = []
    while (line := lines.get(timeout=60)) is not None:
        seen.append(line)
        if "through a" in line:
            break
    assert any("through a" in x for x in seen), seen
    on_a.post(
        f"/v1/jobs/{lease['job_id']}/fail",
        json={"attempt": lease["attempt"], "error": "done", "retryable": False},
        headers=provider,
    )
    follower.join(30)
    on_a.close()
    on_b.close()


@pytest.mark.postgres
def test_a_pass_of_a_service_never_runs_in_two_replicas_at_once(database_url: str) -> None:
    from node.replicas import pass_fence

    engines = [make_engine(database_url), make_engine(database_url)]
    try:
        here, there = (pass_fence(e) for e in engines)
        with here("chain-tick") as first:
            assert first
            with there("chain-tick") as second:
                assert not second  # the deposed leader's pass still runs: skip
            with there("lease-reaper") as other_service:
                assert other_service
        with there("chain-tick") as after:
            assert after  # the pass ended: the lock went with its transaction
    finally:
        for e in engines:
            e.dispose()
