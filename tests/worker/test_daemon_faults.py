"""The daemon's fault handling against a scripted node (no network, no training): nothing is
uploaded or submitted once the lease is lost, final steps and progress lines wait out a
node outage, heartbeats follow the lease the node granted, and a failure of the provider's
own makes it back off, check itself and leave the job to others (issue 19)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from marketplace.codes import from_code
from marketplace.errors import UpstreamUnavailable
from marketplace.leases import Claim, JobOutcome, Lease
from worker.daemon import DaemonConfig, ProviderDaemon
from worker.executors import ExecutionResult, JobSpec, Reporter

VOUCHER = {
    "chain_id": 31337,
    "escrow": "0x" + "11" * 20,
    "job_key": "0x" + "22" * 32,
    "provider": "0x" + "33" * 20,
    "attempt": 1,
    "funding": 1,
    "expiry": 2**40,
    "v": 27,
    "r": "0x" + "44" * 32,
    "s": "0x" + "55" * 32,
}


class _Node:
    """The node's provider API, scripted: `down` makes every call fail as an outage does,
    `lost` makes lease writes answer 409 NOT_LEASE_HOLDER."""

    def __init__(self, *, ttl: float = 60.0, voucher: bool = False, jobs: int = 1) -> None:
        self.ttl = ttl
        self.voucher = voucher
        self.jobs = [f"job_{n}" for n in range(1, jobs + 1)]
        self.calls: list[str] = []
        self.lines: list[str] = []
        self.claims: list[list[str]] = []
        self.down = False
        self.lost = False
        self.attempt = 0

    def _lease(self, job_id: str) -> dict[str, Any]:
        return {
            "lease_id": "l",
            "job_id": job_id,
            "attempt": self.attempt,
            "expires_at": "2999-01-01T00:00:00Z",
            "ttl_seconds": self.ttl,
            "status": "running",
        }

    def _check(self, action: str) -> None:
        if self.down:
            raise UpstreamUnavailable(f"{action}: connection refused")
        if self.lost:
            raise from_code("NOT_LEASE_HOLDER", "This job is leased to another provider", 409)

    async def claim(self, wait: float, job_types: Any, exclude: Any = None) -> Claim | None:
        self.claims.append(list(exclude or []))
        free = [j for j in self.jobs if j not in (exclude or [])]
        if not free:
            await asyncio.sleep(min(wait, 0.05))
            return None
        self.attempt += 1
        job = {"id": free[0], "type": "t", "status": "claimed", "attempt": self.attempt}
        job["max_retries"] = 3
        return Claim.model_validate(
            {
                "job": job,
                "lease": self._lease(free[0]),
                "voucher": {**VOUCHER, "attempt": self.attempt} if self.voucher else None,
            }
        )

    async def end_claims(self) -> None:
        self.calls.append("end_claims")

    async def job_write(self, job_id: str, action: str, attempt: int, **body: Any) -> dict:
        self.calls.append(action)
        self._check(action)
        if action == "logs":
            self.lines.extend(line["line"] for line in body["lines"])
            return {"accepted": len(body["lines"])}
        if action == "progress":
            self.lines.append(body["message"])
            return self._lease(job_id)
        return {"job_id": job_id, "status": "pending"}

    async def renew(self, job_id: str, attempt: int, action: str = "heartbeat") -> Lease:
        self.calls.append(action)
        self._check(action)
        return Lease.model_validate(self._lease(job_id))

    async def add_directory(self, path: Path) -> str:
        self.calls.append("upload")
        self._check("upload")
        return "Qm" + "r" * 44

    async def report_result(self, job_id: str, attempt: int, **body: Any) -> JobOutcome:
        self.calls.append("result")
        self._check("result")
        return JobOutcome(job_id=job_id, status="submitted", result_cid=body["result_cid"])

    async def aclose(self) -> None:
        pass


class _Chain:
    def __init__(self, unanswered: int = 0) -> None:
        self.sent: list[str] = []
        self.unanswered = unanswered  # calls refused before the RPC answers

    def submit(self, voucher: dict, cid: str) -> str:
        if self.unanswered:
            self.unanswered -= 1
            raise UpstreamUnavailable("the chain RPC did not answer: connection refused")
        self.sent.append("submit")
        return "0xtx"

    def abandon(self, job_key: str, attempt: int) -> None:
        return None


class _Executor:
    """Reports a few lines, runs `during` (a hook on the test's side) and returns."""

    job_types = frozenset({"t"})

    def __init__(self, during: Any = None, lines: int = 5) -> None:
        self.during = during
        self.lines = lines

    def run(self, job: JobSpec, workdir: Path, report: Reporter) -> ExecutionResult:
        for n in range(self.lines):
            report.log(f"line {n}")
        if self.during is not None:
            self.during()
        for n in range(self.lines, 2 * self.lines):
            report.log(f"line {n}")
        (workdir / "out").mkdir()
        return ExecutionResult(workdir / "out", {}, "model")


class _Broken:
    job_types = frozenset({"t"})

    def __init__(self) -> None:
        self.runs = 0

    def run(self, job: JobSpec, workdir: Path, report: Reporter) -> ExecutionResult:
        self.runs += 1
        raise OSError(30, "Read-only file system")


def _daemon(tmp_path: Path, node: _Node, executor: Any, **config: Any) -> ProviderDaemon:
    cfg = DaemonConfig(node_url="http://node.invalid", workdir=tmp_path, **config)
    daemon = ProviderDaemon(cfg, account=None, executors={"t": executor})
    daemon.api = node  # type: ignore[assignment]
    return daemon


def _run(daemon: ProviderDaemon, timeout: float = 30) -> None:
    async def main() -> None:
        await asyncio.wait_for(daemon.run(), timeout)

    asyncio.run(main())


def test_a_lease_lost_during_training_uploads_and_submits_nothing(tmp_path):
    node = _Node(voucher=True)
    executor = _Executor(during=lambda: setattr(node, "lost", True))
    daemon = _daemon(tmp_path, node, executor, run_once=True)
    daemon.chain = _Chain()
    _run(daemon)
    assert "upload" not in node.calls and "result" not in node.calls
    assert daemon.chain.sent == [] and daemon.completed == []


def test_a_lease_lost_after_the_upload_submits_nothing_on_chain(tmp_path):
    node = _Node(voucher=True)
    daemon = _daemon(tmp_path, node, _Executor(), run_once=True)
    daemon.chain = _Chain()
    upload = node.add_directory

    async def upload_then_lose(path: Path) -> str:
        cid = await upload(path)
        node.lost = True  # the lease ends while the result is being uploaded
        return cid

    node.add_directory = upload_then_lose  # type: ignore[method-assign]
    _run(daemon)
    assert daemon.chain.sent == [] and "result" not in node.calls


def test_a_chain_rpc_outage_at_the_submit_is_waited_out(tmp_path):
    """The node's chain RPC refusing connections while the result goes on chain (a node
    outage) is retried within the lease, as the upload is: the result is submitted and
    reported, not failed."""
    node = _Node(voucher=True)
    daemon = _daemon(tmp_path, node, _Executor(), run_once=True)
    daemon.chain = _Chain(unanswered=2)
    _run(daemon)
    assert daemon.chain.sent == ["submit"] and daemon.chain.unanswered == 0
    assert [c["result_cid"] for c in daemon.completed] == ["Qm" + "r" * 44]


def test_an_outage_at_the_end_of_training_loses_no_line_and_no_result(tmp_path):
    node = _Node()

    def outage() -> None:
        node.down = True
        asyncio.run(asyncio.sleep(0))  # (the executor runs in a thread)

    async def heal_later() -> None:
        await asyncio.sleep(3)
        node.down = False

    daemon = _daemon(tmp_path, node, _Executor(during=outage), run_once=True)

    async def main() -> None:
        healer = asyncio.create_task(heal_later())
        await asyncio.wait_for(daemon.run(), 60)
        await healer

    asyncio.run(main())
    assert [c["result_cid"] for c in daemon.completed] == ["Qm" + "r" * 44]
    logged = [line for line in node.lines if line.startswith("line ")]
    assert logged == [f"line {n}" for n in range(10)]  # every line, in order
    assert node.calls.count("upload") >= 1 and node.calls[-1] == "result"


def test_heartbeats_follow_the_lease_the_node_granted(tmp_path, caplog):
    node = _Node(ttl=3.0)
    daemon = _daemon(tmp_path, node, _Executor(during=lambda: time.sleep(3.5)), run_once=True)
    with caplog.at_level(logging.WARNING, logger="dcm.provider"):
        _run(daemon)
    # a 3 s lease: a heartbeat about every second, not every 16-20 s
    assert node.calls.count("heartbeat") >= 2
    assert any("leases for 3.0s" in r.getMessage() for r in caplog.records)


def test_an_own_failure_backs_off_self_checks_and_leaves_the_job(tmp_path):
    node = _Node(jobs=1)
    broken = _Broken()
    daemon = _daemon(tmp_path, node, broken, failure_backoff_seconds=0.2)

    async def main() -> None:
        runner = asyncio.create_task(daemon.run())
        await asyncio.sleep(1.5)
        daemon.request_stop()
        await asyncio.wait_for(runner, 10)

    asyncio.run(main())
    assert broken.runs == 1  # the failed job was never claimed again
    assert "fail" in node.calls
    assert all("job_1" in exclude for exclude in node.claims[1:])  # asked not to get it back
    assert len(node.claims) >= 2


def test_a_workdir_that_cannot_hold_job_folders_stops_claims(tmp_path, caplog):
    node = _Node(jobs=2)
    broken = _Broken()
    daemon = _daemon(tmp_path, node, broken, failure_backoff_seconds=0.1, max_backoff_seconds=0.2)
    (tmp_path / "jobs").write_text("a file where job folders go")

    async def main() -> None:
        runner = asyncio.create_task(daemon.run())
        await asyncio.sleep(1.5)
        daemon.request_stop()
        await asyncio.wait_for(runner, 10)

    with caplog.at_level(logging.ERROR, logger="dcm.provider"):
        asyncio.run(main())
    # job_1 fails before its executor runs; job_2 is never claimed while the check fails
    assert broken.runs == 0 and len(node.claims) == 1 and "fail" in node.calls
    assert any("self-check failed" in r.getMessage() for r in caplog.records)


def test_job_folders_left_by_a_killed_run_are_removed_at_start(tmp_path):
    left = tmp_path / "jobs" / "job_7-a1" / "run"
    left.mkdir(parents=True)
    (left / "last.pt").write_bytes(b"x" * 1000)
    daemon = _daemon(tmp_path, _Node(), _Executor())
    daemon._clean_job_folders()
    assert list((tmp_path / "jobs").iterdir()) == []
