"""Provider and node faults against real processes on loopback (issue 19).

Each scenario starts its own `dcm serve` (embedded chain, development mode, a fresh data
dir, 10 s leases unless it says otherwise) and real `dcm provider run` processes, funds one
YOLO job (tiny synthetic dataset, 3 epochs), injects its fault, waits for the job to end,
and, when a result was submitted, has the requester accept it (the provider is paid). It
then records:

- outcome: the job's final status (`completed`, `failed`, ...; `stuck:<status>` when the
  scenario ran out of time);
- payouts: the settlements the node reports for the job (`accepted`, `refunded`...), and
  how many paid a provider;
- attempts: leases the job went through (claims);
- wasted training seconds: for every attempt that did not produce the paid result, the span
  of its own progress and log writes (training done and thrown away).

Targets: every job completed or refunded, none paid twice, none stuck, no training wasted
by a node outage shorter than the lease. Two faults involve no job and have rows of their
own: `dcm serve` stopped while providers long-poll (stops within 2 s, pollers answered
"no work"), and an upload onto a full disk (507, nothing spooled or pinned; needs root to
mount the small disk, otherwise the row says it was skipped). Every scenario is bounded
(`SCENARIO_SECONDS`), every request goes to 127.0.0.1.

    PYTHONPATH=. python bench/faults.py [SCENARIO ...]    # no names: every scenario

Prints one row per scenario and writes bench/results/faults.json.
"""

from __future__ import annotations

import json
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from web3 import Web3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from marketplace.datasets.synthetic import write_detection_dataset  # noqa: E402
from marketplace.escrow.client import JobEscrow  # noqa: E402
from marketplace.sdk.client import NodeClient  # noqa: E402
from marketplace.sdk.http import siwe_payload  # noqa: E402
from marketplace.sdk.models import Event, Job  # noqa: E402
from tests.e2e.test_faults import _long_poller  # noqa: E402
from tests.fixtures.served import Served, dcm_env  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "faults.json"
SCENARIO_SECONDS = 300.0
EPOCHS = 3
REWARD = "0.01"


class Run:
    """One scenario's node, requester, job and provider processes."""

    def __init__(self, work: Path, lease_seconds: int = 10) -> None:
        self.work = work
        self.env = {
            "DCM_LEASES__LEASE_SECONDS": str(lease_seconds),
            "DCM_LEASES__REAPER_INTERVAL_SECONDS": "0.5",
        }
        self.node = Served(work / "node", None, **self.env)
        self.deadline = time.monotonic() + SCENARIO_SECONDS
        self.procs: list[tuple[subprocess.Popen, Any]] = []
        self.requester = Account.create()
        self._faucet(self.requester.address, "1")
        self.client = NodeClient(self.node.url)
        self.client.sign_in(self.requester)
        self.job_id = 0
        self._funded_job()

    # -- setup ------------------------------------------------------------------------

    def _faucet(self, address: str, eth: str) -> None:
        resp = httpx.post(self.node.url + "/chain/faucet", json={"address": address, "amount": eth})
        resp.raise_for_status()

    def escrow(self) -> JobEscrow:
        info = httpx.get(self.node.url + "/chain/info").json()
        return JobEscrow(Web3(Web3.HTTPProvider(info["rpc_url"])), info["escrow_address"])

    def _funded_job(self) -> int:
        dataset = write_detection_dataset(self.work / "shapes", train=16, val=8, size=64)
        job = NodeClient(self.node.url).upload_dataset_job(
            dataset,
            model="yolov8n",
            epochs=EPOCHS,
            imgsz=64,
            classes=["cat", "dog"],
            reward=REWARD,
            requester_address=self.requester.address,
            export_format="pt",
        )
        call = httpx.get(f"{self.node.url}/jobs/{job.number}/funding").json()
        call = call.get("data", call)
        w3 = self.escrow().w3
        tx = {
            "to": call["to"],
            "data": call["data"],
            "value": int(call["value"]),
            "chainId": int(call["chain_id"]),
            "nonce": w3.eth.get_transaction_count(self.requester.address),
            "gas": 200_000,
            "gasPrice": w3.eth.gas_price,
        }
        signed = self.requester.sign_transaction(tx)
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))
        self.job_id = job.number
        if not self.wait_status({"pending"}, 60):
            raise RuntimeError("the funded job did not open")
        return job.number

    def provider(self, name: str, *args: str, broken_workdir: bool = False) -> subprocess.Popen:
        account = Account.create()
        self._faucet(account.address, "0.2")
        keyfile = self.work / f"{name}.json"
        keyfile.write_text(json.dumps(Account.encrypt(account.key, "pw")))
        workdir = self.work / name
        if broken_workdir:
            workdir.mkdir()
            (workdir / "jobs").write_text("not a directory")
        log = open(self.work / f"{name}.log", "wb")  # noqa: SIM115 (closed in close())
        proc = subprocess.Popen(
            [sys.executable, "-m", "dcm.cli", "provider", "run", "--node", self.node.url]
            + ["--keyfile", str(keyfile), "--workdir", str(workdir), *args],
            env=dcm_env(self.work / "unused", None, DCM_WALLET_PASSWORD="pw"),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append((proc, log))
        return proc

    # -- observation ------------------------------------------------------------------

    def job(self) -> Job:
        return self.client.job(self.job_id)

    def status(self) -> str:
        return httpx.get(f"{self.node.url}/jobs/image_processing/get-job/{self.job_id}").json()[
            "dcm_status"
        ]

    def wait_status(self, statuses: set[str], timeout: float | None = None) -> bool:
        until = min(self.deadline, time.monotonic() + (timeout or SCENARIO_SECONDS))
        while time.monotonic() < until:
            try:
                if self.status() in statuses:
                    return True
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.3)
        return False

    def wait_epoch(self, epoch: int = 1) -> bool:
        prefix = f"Epoch {epoch}/"
        while time.monotonic() < self.deadline:
            events = self.job().events
            if any((e.message or "").startswith(prefix) for e in events):
                return True
            time.sleep(0.2)
        return False

    # -- the end ----------------------------------------------------------------------

    def settle_and_measure(self, scenario: str, started: float) -> dict[str, Any]:
        finished = self.wait_status({"submitted", "completed", "failed", "cancelled"})
        if finished and self.status() == "submitted":
            escrow = self.escrow()
            key = httpx.get(f"{self.node.url}/v1/jobs/job_{self.job_id}/escrow").json()["data"][
                "job_key"
            ]
            record = escrow.get_job(key)
            if record.status.name != "SUBMITTED":
                raise RuntimeError(f"job submitted but escrow {key} is {record}")
            escrow.accept(self.requester, key)
            self.wait_status({"completed"}, 30)
        status = self.status()
        job = self.job()
        payouts = self.client.payouts(requester=self.requester.address)
        attempts = [e for e in job.events if e.type == "claimed"]
        final = job.attempt or (attempts[-1].attempt if attempts else None)
        return {
            "scenario": scenario,
            "outcome": status
            if status in {"completed", "failed", "cancelled"}
            else f"stuck:{status}",
            "payouts": [p.outcome for p in payouts],
            "paid_count": sum(p.recipient != self.requester.address for p in payouts),
            "attempts": len(attempts),
            "wasted_training_seconds": round(_wasted(job.events, final), 1),
            "seconds": round(time.monotonic() - started, 1),
        }

    def close(self) -> None:
        for proc, log in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            log.close()
        self.node.stop()


def _wasted(events: list[Event], final_attempt: int | None) -> float:
    """Seconds of provider writes (progress, logs) of attempts other than the final one."""
    spans: dict[int, list[float]] = {}
    for e in events:
        if e.type in ("progress", "log") and e.attempt and e.created_at:
            spans.setdefault(e.attempt, []).append(e.created_at.timestamp())
    return sum(max(t) - min(t) for a, t in spans.items() if a != final_attempt)


# -- scenarios ---------------------------------------------------------------------------


def no_fault_8s_lease(run: Run) -> None:
    run.provider("p1", "--once")


def provider_killed_mid_training(run: Run) -> None:
    victim = run.provider("victim", "--once")
    run.wait_epoch()
    victim.send_signal(signal.SIGKILL)
    run.wait_status({"pending"}, 30)
    run.provider("successor", "--once")


def provider_frozen_past_lease(run: Run) -> None:
    frozen = run.provider("frozen", "--once")
    run.wait_epoch()
    frozen.send_signal(signal.SIGSTOP)
    run.wait_status({"pending"}, 30)
    run.provider("successor", "--once")
    run.wait_status({"submitted", "completed"})
    frozen.send_signal(signal.SIGCONT)  # it wakes with a lost lease: must publish nothing


def lone_provider_frozen_past_lease(run: Run) -> None:
    lone = run.provider("lone")
    run.wait_epoch()
    lone.send_signal(signal.SIGSTOP)
    run.wait_status({"pending"}, 30)
    lone.send_signal(signal.SIGCONT)


def node_outage_8s_at_end_of_training(run: Run) -> None:
    run.provider("steady", "--once")
    run.wait_epoch(EPOCHS)
    run.node.stop()
    time.sleep(8)
    run.node = run.node.restart()


def unwritable_workdir(run: Run) -> None:
    run.provider("broken", broken_workdir=True)
    while time.monotonic() < run.deadline and not any(
        e.type == "requeued" for e in run.job().events
    ):
        time.sleep(0.3)
    run.provider("healthy", "--once")


def serve_stop_while_providers_long_poll(work: Path) -> dict[str, Any]:
    """SIGTERM `dcm serve` while two providers long-poll for work (item 6): how long the
    node takes to stop, and what the pollers were answered (204: no work, retry)."""
    node = Served(work / "node", None)
    answers: list[int] = []
    try:
        pollers = []
        for _ in range(2):
            started = threading.Event()
            poller = threading.Thread(target=_long_poller, args=(node.url, started, answers))
            poller.start()
            if not started.wait(30):
                raise RuntimeError("a provider could not start its long-poll")
            pollers.append(poller)
        time.sleep(1.0)  # both are inside their 30 s wait now
        began = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        node.proc.wait(30)
        stopped_in = time.monotonic() - began
        for poller in pollers:
            poller.join(10)
    finally:
        node.stop()
    return {
        "outcome": "stopped" if stopped_in < 2.0 and answers == [204, 204] else "slow stop",
        "stop_seconds": round(stopped_in, 2),
        "poll_answers": answers,
    }


def full_disk_upload(work: Path) -> dict[str, Any]:
    """A result upload onto a node whose spool disk is full (item 5: a 2 MiB tmpfs, root
    only): the answer, and whether anything was left half-written or pinned."""
    node = Served(work / "node", None)
    scratch = node.data_dir / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(scratch)], capture_output=True
    )
    try:
        if mounted.returncode != 0:
            return {"outcome": "skipped: cannot mount a tmpfs (needs root)"}
        http = httpx.Client(base_url=node.url, timeout=60)
        account = Account.create()
        nonce = http.get("/auth/nonce").json()
        token = http.post("/auth/siwe", json=siwe_payload(nonce, account, "full disk")).json()
        resp = http.post(
            "/api/v0/add",
            headers={"Authorization": f"Bearer {token['access_token']}"},
            files=[("file", ("weights.bin", b"\x01" * (3 * 1024 * 1024)))],
        )
        left = list(scratch.iterdir())
        pins = http.post("/api/v0/pin/ls").json().get("Keys", {})
        code = resp.json().get("ErrorCode") if resp.status_code >= 400 else None
        clean = resp.status_code == 507 and not left and not pins
        return {
            "outcome": "refused 507, nothing written" if clean else "half-written",
            "status": resp.status_code,
            "code": code,
            "spool_left": len(left),
            "pins": len(pins),
        }
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", "-l", str(scratch)], check=False)
        node.stop()


# Faults that involve no job: each returns its own row (outcome plus its measures).
NODE_SCENARIOS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "serve_stop_while_providers_long_poll": serve_stop_while_providers_long_poll,
    "full_disk_upload": full_disk_upload,
}

SCENARIOS: dict[str, tuple[Callable[[Run], None], int]] = {
    "no_fault_8s_lease": (no_fault_8s_lease, 8),
    "provider_killed_mid_training": (provider_killed_mid_training, 10),
    "provider_frozen_past_lease": (provider_frozen_past_lease, 10),
    "lone_provider_frozen_past_lease": (lone_provider_frozen_past_lease, 10),
    "node_outage_8s_at_end_of_training": (node_outage_8s_at_end_of_training, 10),
    "unwritable_workdir": (unwritable_workdir, 10),
}


def main(names: list[str]) -> int:
    rows = []
    for name in names or [*SCENARIOS, *NODE_SCENARIOS]:
        if name in NODE_SCENARIOS:
            with tempfile.TemporaryDirectory(prefix=f"dcm-faults-{name}-") as tmp:
                try:
                    row = {"scenario": name, **NODE_SCENARIOS[name](Path(tmp))}
                except Exception as exc:  # noqa: BLE001 - a scenario that breaks is a finding
                    row = {"scenario": name, "outcome": f"error: {exc!r}"[:200]}
            rows.append(row)
            measures = {k: v for k, v in row.items() if k not in ("scenario", "outcome")}
            print(f"{name:<36} {row['outcome']:<12} {measures}", flush=True)
            continue
        inject, lease = SCENARIOS[name]
        with tempfile.TemporaryDirectory(prefix=f"dcm-faults-{name}-") as tmp:
            started = time.monotonic()
            run = None
            try:
                run = Run(Path(tmp), lease_seconds=lease)
                inject(run)
                row = run.settle_and_measure(name, started)
            except Exception as exc:  # noqa: BLE001 - a scenario that breaks is a finding
                row = {"scenario": name, "outcome": f"error: {exc!r}"[:200]}
            finally:
                if run is not None:
                    run.close()
        rows.append(row)
        print(
            f"{row['scenario']:<36} {row['outcome']:<12} "
            f"payouts={row.get('payouts')} attempts={row.get('attempts')} "
            f"wasted={row.get('wasted_training_seconds')}s ({row.get('seconds')}s)",
            flush=True,
        )
    ok = all(
        r["outcome"] in {"completed", "failed", "cancelled"} and r.get("paid_count", 0) <= 1
        for r in rows
        if r["scenario"] in SCENARIOS
    ) and all(
        r["outcome"] in {"stopped", "refused 507, nothing written"}
        or r["outcome"].startswith("skipped")
        for r in rows
        if r["scenario"] in NODE_SCENARIOS
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "python": platform.python_version(),
                "epochs": EPOCHS,
                "scenarios": rows,
                "targets_met": ok,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"targets met: {ok}; wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
