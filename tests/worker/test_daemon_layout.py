"""The daemon hands the executor the dataset layout stored with the job it claimed (a fake
node API and a recording executor; no network, no training)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from marketplace.datasets.layout import DatasetLayout, SplitDirs
from marketplace.leases import Claim, JobOutcome, Lease
from worker.daemon import DaemonConfig, ProviderDaemon
from worker.executors import ExecutionResult, JobSpec, Reporter

LAYOUT = DatasetLayout(
    task="detect",
    layout="split",
    train=SplitDirs(images="images/train", labels="labels/train"),
    val=SplitDirs(images="images/val", labels="labels/val"),
)


class _FakeNode:
    """The calls the daemon makes for one job, answered from memory."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.job = job
        self.claimed = False
        self.writes: list[str] = []

    async def claim(
        self, wait_seconds: float, job_types: list[str], exclude: list[str] | None = None
    ) -> Claim | None:
        if self.claimed:
            await asyncio.sleep(wait_seconds)
            return None
        self.claimed = True
        job = {"status": "claimed", "attempt": 1, "max_retries": 3, **self.job}
        return Claim.model_validate({"job": job, "lease": self._lease(), "voucher": None})

    def _lease(self) -> dict[str, Any]:
        return {
            "lease_id": "l1",
            "job_id": self.job["id"],
            "attempt": 1,
            "expires_at": "2999-01-01T00:00:00Z",
            "ttl_seconds": 60,
            "status": "running",
        }

    async def end_claims(self) -> None:
        self.writes.append("end_claims")

    async def job_write(self, job_id: str, action: str, attempt: int, **body: Any) -> dict:
        self.writes.append(action)
        return self._lease() if action == "progress" else {"accepted": 1}

    async def renew(self, job_id: str, attempt: int, action: str = "heartbeat") -> Lease:
        self.writes.append(action)
        return Lease.model_validate(self._lease())

    async def report_result(self, job_id: str, attempt: int, **body: Any) -> JobOutcome:
        self.writes.append("result")
        return JobOutcome(job_id=job_id, status="submitted", result_cid=body["result_cid"])

    async def add_directory(self, path: Path) -> str:
        return "bafyresult"

    async def aclose(self) -> None:
        pass


class _FakeCache:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def fetch(self, api: Any, job_id: str, folder_cid: str) -> Path:
        return self.folder


class _Recorder:
    job_types = frozenset({"image_processing"})

    def __init__(self) -> None:
        self.jobs: list[JobSpec] = []

    def run(self, job: JobSpec, workdir: Path, report: Reporter) -> ExecutionResult:
        self.jobs.append(job)
        (workdir / "out").mkdir()
        return ExecutionResult(workdir / "out", {}, "yolo_model")


def _run_one(tmp_path: Path, spec: dict[str, Any]) -> JobSpec:
    job = {"id": "job_1", "type": "image_processing", "spec": spec, "folder_cid": "bafyds"}
    recorder = _Recorder()
    config = DaemonConfig(node_url="http://node.invalid", workdir=tmp_path, run_once=True)
    daemon = ProviderDaemon(config, account=None, executors={"image_processing": recorder})

    async def main() -> None:
        await daemon.api.aclose()
        daemon.api = _FakeNode(job)
        daemon.datasets = _FakeCache(tmp_path / "dataset")
        await daemon.run()

    asyncio.run(main())
    assert daemon.api.writes[0] == "start" and daemon.api.writes[-1] == "result"
    (ran,) = recorder.jobs
    return ran


def test_claimed_job_hands_its_stored_layout_to_the_executor(tmp_path):
    spec = {"model": "yolov8n", "epochs": 1, "dataset": {**LAYOUT.model_dump(), "files": 4}}
    ran = _run_one(tmp_path, spec)
    assert ran.dataset_layout == LAYOUT
    assert ran.dataset_dir == tmp_path / "dataset"


def test_job_stored_before_layouts_reaches_the_executor_without_one(tmp_path):
    spec = {"model": "yolov8n", "epochs": 1, "dataset": {"task": "detect", "layout": "split"}}
    assert _run_one(tmp_path, spec).dataset_layout is None
