"""The container executor on a real Docker engine: what a job sees inside its container, and
how each way a container can end reaches the daemon loop."""

from __future__ import annotations

import contextlib
import io
import tarfile
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures import web
from tests.fixtures.docker import IMAGE
from tests.worker.executors.container.conftest import containers_of
from worker.executors.base import (
    ExecutionCancelled,
    ExecutionFailed,
    JobSpec,
    RecordingReporter,
)
from worker.executors.container import ContainerExecutor
from worker.executors.container.engine import LABEL_PROVIDER as LABEL


def _job(command: str, job_id: str = "job_1", **spec: Any) -> JobSpec:
    fetch = spec.pop("fetch", None)
    return JobSpec(
        job_id=job_id,
        attempt=1,
        job_type="container",
        spec={"image": IMAGE, "command": ["sh", "-c", command], **spec},
        fetch=fetch,
    )


def test_a_job_that_prints_and_writes_outputs_completes_with_logs_and_exit_code(
    executor: ContainerExecutor, tmp_path: Path
) -> None:
    report = RecordingReporter()
    result = executor.run(
        _job("echo hello; echo oops >&2; echo 42 > /outputs/result.txt", env={"X": "1"}),
        tmp_path,
        report,
    )
    assert (result.output_dir / "result.txt").read_text() == "42\n"
    assert result.artifacts == ("result.txt",)
    assert result.metrics["exit_code"] == 0
    assert result.metrics["oom"] is False and result.metrics["timed_out"] is False
    assert result.metrics["endpoints"] == []
    assert ("stdout", "hello") in report.streams
    assert ("stderr", "oops") in report.streams


def test_a_job_that_exits_3_fails_with_exit_code_3_and_keeps_its_outputs(
    executor: ContainerExecutor, tmp_path: Path
) -> None:
    report = RecordingReporter()
    with pytest.raises(ExecutionFailed, match="exited with code 3") as failed:
        executor.run(_job("echo partial > /outputs/part.txt; exit 3"), tmp_path, report)
    result = failed.value.result
    assert result.metrics["exit_code"] == 3
    assert (result.output_dir / "part.txt").read_text() == "partial\n"


def test_a_job_over_its_duration_is_stopped_and_fails_with_a_timeout(
    executor: ContainerExecutor, tmp_path: Path, docker_client: Any, provider_id: str
) -> None:
    with pytest.raises(ExecutionFailed, match="timed out") as failed:
        executor.run(_job("sleep 60", duration_seconds=1), tmp_path, RecordingReporter())
    metrics = failed.value.result.metrics
    assert metrics["timed_out"] is True
    assert metrics["exit_code"] in (137, 143)  # SIGKILL after the grace, or SIGTERM obeyed
    assert containers_of(docker_client, provider_id) == []


def test_a_job_over_its_memory_limit_is_reported_as_oom(
    executor: ContainerExecutor, tmp_path: Path
) -> None:
    hog = "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"
    with pytest.raises(ExecutionFailed, match="out of memory") as failed:
        executor.run(_job(hog, memory_bytes=16 * 2**20), tmp_path, RecordingReporter())
    assert failed.value.result.metrics["oom"] is True
    assert failed.value.result.metrics["exit_code"] == 137


def test_cancel_stops_the_container_and_leaves_none(
    executor: ContainerExecutor, tmp_path: Path, docker_client: Any, provider_id: str
) -> None:
    started = threading.Event()

    class Watch(RecordingReporter):
        def log(self, line: str, level: str = "info", stream: str | None = None) -> None:
            super().log(line, level, stream)
            if line == "ready":
                started.set()

    report = Watch()
    threading.Thread(target=lambda: started.wait(60) and report.cancel(), daemon=True).start()
    with pytest.raises(ExecutionCancelled):
        executor.run(_job("echo ready; sleep 600"), tmp_path, report)
    assert started.is_set()
    assert containers_of(docker_client, provider_id) == []


def test_the_container_runs_as_nobody_read_only_without_network_or_capabilities(
    executor: ContainerExecutor, tmp_path: Path
) -> None:
    report = RecordingReporter()
    script = (
        "id -u; id -g; "
        "touch /probe 2>/dev/null && echo root-writable || echo root-read-only; "
        "echo scratch > /tmp/s && echo tmp-writable; "
        "ls /sys/class/net; "
        "grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status"
    )
    executor.run(_job(script), tmp_path, report)
    out = [line for stream, line in report.streams if stream == "stdout"]
    assert out[:2] == ["65534", "65534"]
    assert "root-read-only" in out and "tmp-writable" in out
    assert "lo" in out and "eth0" not in out
    assert "CapEff:\t0000000000000000" in out
    assert "NoNewPrivs:\t1" in out


def test_scratch_space_is_capped_at_the_jobs_storage(
    executor: ContainerExecutor, tmp_path: Path
) -> None:
    report = RecordingReporter()
    executor.run(
        _job(
            "dd if=/dev/zero of=/tmp/fill bs=1024 count=4096 2>/dev/null || echo no-space",
            storage_bytes=2**20,
            memory_bytes=64 * 2**20,
        ),
        tmp_path,
        report,
    )
    assert ("stdout", "no-space") in report.streams


def test_outputs_past_the_jobs_storage_stop_the_container(
    executor: ContainerExecutor, tmp_path: Path
) -> None:
    with pytest.raises(ExecutionFailed, match="storage exceeded") as failed:
        executor.run(
            _job("dd if=/dev/zero of=/outputs/big bs=1M count=8; sleep 600", storage_bytes=2**20),
            tmp_path,
            RecordingReporter(),
        )
    assert failed.value.result.metrics["storage_exceeded"] is True


def test_links_a_container_leaves_in_outputs_are_not_followed(
    executor: ContainerExecutor, tmp_path: Path
) -> None:
    result = executor.run(
        _job("ln -s /etc/passwd /outputs/passwd; mkfifo /outputs/pipe; echo ok > /outputs/ok"),
        tmp_path,
        RecordingReporter(),
    )
    assert result.artifacts == ("ok",)
    assert sorted(p.name for p in result.output_dir.iterdir()) == ["ok"]


def test_inputs_are_mounted_read_only(executor: ContainerExecutor, tmp_path: Path) -> None:
    data = tmp_path / "input"
    data.mkdir()
    (data / "in.txt").write_text("from ipfs\n")
    fetched = []

    def fetch(cid: str) -> Path:
        fetched.append(cid)
        return data

    cid = "Qm" + "a" * 44
    report = RecordingReporter()
    executor.run(
        _job(
            "cat /inputs/in.txt; touch /inputs/x 2>/dev/null || echo read-only",
            inputs=[{"cid": cid}],
            fetch=fetch,
        ),
        tmp_path / "work",
        report,
    )
    assert fetched == [cid]
    out = [line for stream, line in report.streams if stream == "stdout"]
    assert out == ["from ipfs", "read-only"]


def test_an_exposed_port_is_published_and_reported_as_an_endpoint(
    executor: ContainerExecutor, tmp_path: Path
) -> None:
    served: dict[str, Any] = {}

    class Watch(RecordingReporter):
        def progress(self, percent: float, message: str, metrics: Any = None) -> None:
            super().progress(percent, message, metrics)
            for endpoint in (metrics or {}).get("endpoints", []):
                threading.Thread(target=fetch, args=(endpoint,), daemon=True).start()

    report = Watch()

    def fetch(endpoint: dict[str, Any]) -> None:
        for _ in range(100):
            try:
                served["body"] = web.get(f"http://{endpoint['address']}/", timeout=2).text
                break
            except httpx.HTTPError:
                threading.Event().wait(0.1)
        report.cancel()

    script = "mkdir /tmp/w && echo served > /tmp/w/index.html && httpd -f -p 8080 -h /tmp/w"
    with pytest.raises(ExecutionCancelled):
        executor.run(_job(script, ports=[{"port": 8080, "expose": True}]), tmp_path, report)
    endpoints = next(m["endpoints"] for _p, _m, m in report.progress_calls if m.get("endpoints"))
    assert endpoints[0]["port"] == 8080 and endpoints[0]["host"] == "127.0.0.1"
    assert served.get("body") == "served\n"


def test_an_image_from_ipfs_is_loaded_from_its_archive_and_runs(
    executor: ContainerExecutor, tmp_path: Path, docker_client: Any
) -> None:
    # a `docker save` archive of the test image under a name of its own
    image = docker_client.images.get(IMAGE)
    image.tag("localhost/dcm-test-saved", tag="v1")
    archive = tmp_path / "image.tar"
    with open(archive, "wb") as fh:
        for chunk in docker_client.images.get("localhost/dcm-test-saved:v1").save(named=True):
            fh.write(chunk)
    from marketplace.content.importer import import_path

    cid = str(import_path(archive).cid)
    docker_client.images.remove("localhost/dcm-test-saved:v1")
    with contextlib.suppress(Exception):
        docker_client.images.remove(f"localhost/dcm-ipfs:{cid}")
    report = RecordingReporter()
    result = executor.run(
        _job("echo from-ipfs > /outputs/r.txt", image=f"ipfs://{cid}", fetch=lambda c: archive),
        tmp_path / "work",
        report,
    )
    assert (result.output_dir / "r.txt").read_text() == "from-ipfs\n"
    assert docker_client.images.get(f"localhost/dcm-ipfs:{cid}").id == image.id


def test_an_archive_that_is_not_an_image_fails_the_job(
    executor: ContainerExecutor, tmp_path: Path
) -> None:
    from marketplace.errors import ValidationFailed

    junk = tmp_path / "junk.tar"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    junk.write_bytes(buf.getvalue())
    with pytest.raises(ValidationFailed):
        executor.run(
            _job("true", image="ipfs://Qm" + "b" * 44, fetch=lambda c: junk),
            tmp_path / "work",
            RecordingReporter(),
        )


def test_containers_left_by_an_earlier_run_are_removed_at_start(
    executor: ContainerExecutor, docker_client: Any, provider_id: str
) -> None:
    def sleeper(provider: str) -> Any:
        return docker_client.containers.run(
            IMAGE, ["sleep", "600"], detach=True, network_mode="none", labels={LABEL: provider}
        )

    mine, other = sleeper(provider_id), sleeper("other")
    try:
        ContainerExecutor().recover(provider_id)  # the provider restarted
        assert containers_of(docker_client, provider_id) == []
        other.reload()
        assert other.status == "running"
    finally:
        other.remove(force=True)
        with contextlib.suppress(Exception):
            mine.remove(force=True)


def test_stats_samples_go_to_the_reporter(executor: ContainerExecutor, tmp_path: Path) -> None:
    report = RecordingReporter()
    executor.run(_job("sleep 3"), tmp_path, report)
    assert report.samples, "a three-second container gave no docker stats sample"
    sample = report.samples[0]
    assert sample["memory_limit_bytes"] == 512 * 2**20  # the provider's default
    assert {"cpu_percent", "memory_bytes", "pids", "at"} <= set(sample)


@pytest.fixture
def registry(docker_client: Any, busybox_image: str) -> Any:
    """A registry serving an image whose layer the engine does not hold (busybox and 2 MB of
    random bytes), so a pull downloads it."""
    import os

    from tests.fixtures.docker import busybox_rootfs
    from tests.fixtures.registry import serving_registry

    rootfs = io.BytesIO(busybox_rootfs())
    with tarfile.open(fileobj=rootfs, mode="a") as tar:
        noise = os.urandom(2 * 2**20)
        info = tarfile.TarInfo("noise.bin")
        info.size = len(noise)
        tar.addfile(info, io.BytesIO(noise))
    name = f"localhost/dcm-test-registry:{os.urandom(4).hex()}"
    repository, _, tag = name.rpartition(":")
    docker_client.api.import_image_from_data(
        rootfs.getvalue(), repository=repository, tag=tag, changes=["ENV PATH=/bin"]
    )
    saved = b"".join(docker_client.images.get(name).save(named=False))
    docker_client.images.remove(name)
    with serving_registry(saved) as host:
        yield host


def test_an_image_from_a_registry_is_pulled_with_progress_in_the_logs(
    executor: ContainerExecutor, tmp_path: Path, docker_client: Any, registry: str
) -> None:
    image = f"{registry}/dcm/pulled:v1"
    report = RecordingReporter()
    try:
        result = executor.run(_job("echo pulled > /outputs/p", image=image), tmp_path, report)
        assert (result.output_dir / "p").read_text() == "pulled\n"
        lines = [line for _stream, line in report.streams]
        assert f"pulling {image}" in lines
        assert any(line.startswith(f"pull {image}: 100% of ") for line in lines), lines
    finally:
        with contextlib.suppress(Exception):
            docker_client.images.remove(image)


def test_an_image_over_the_providers_size_limit_is_refused(
    docker_client: Any, busybox_image: str, tmp_path: Path, registry: str, provider_id: str
) -> None:
    from marketplace.errors import ValidationFailed
    from worker.executors.container import ContainerSettings

    small = ContainerExecutor(ContainerSettings(max_image_bytes=100_000))
    small.recover(provider_id)
    image = f"{registry}/dcm/too-big:v1"
    try:
        with pytest.raises(ValidationFailed, match="over this provider's limit of 100000 bytes"):
            small.run(_job("true", image=image), tmp_path, RecordingReporter())
        assert docker_client.images.list(name=f"{registry}/dcm/too-big") == []
    finally:
        with contextlib.suppress(Exception):
            docker_client.images.remove(image)


def test_a_job_asking_more_gpus_than_the_engine_can_give_is_left_to_other_providers(
    executor: ContainerExecutor, tmp_path: Path
) -> None:
    from worker.executors.container import EngineUnavailable
    from worker.hardware import detect_gpus

    usable = len(detect_gpus()["gpus"]) if executor.engine.describe()["gpu_support"] else 0
    with pytest.raises(EngineUnavailable, match="GPU"):
        executor.run(_job("true", gpus=usable + 1), tmp_path, RecordingReporter())
