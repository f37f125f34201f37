"""The resource sampler (`worker.sampler`) on real processes: a process tree's CPU and
memory, its children included, read with psutil and from /proc alike."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from worker.sampler import (
    ProcReader,
    PsutilReader,
    ResourceSampler,
    own_network_counters,
    parse_smi,
)

MIB = 1024 * 1024
# The parent starts a child that holds 96 MiB and spins; the parent itself only waits.
TREE = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", '''
import sys
block = bytearray({96 * MIB})
for i in range(0, len(block), 4096):
    block[i] = 1
print("ready", flush=True)
while True:
    sum(range(10000))
'''])
child.wait()
"""


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[str]]:
    parent = subprocess.Popen(
        [sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        yield parent
    finally:
        os.killpg(parent.pid, 9)
        parent.wait()


@pytest.mark.parametrize("reader", [PsutilReader, ProcReader], ids=["psutil", "proc"])
def test_the_sampler_reports_a_subprocess_trees_cpu_and_memory(
    tree: subprocess.Popen[str], reader: type
) -> None:
    samples: list[dict[str, Any]] = []
    got_two = threading.Event()

    def report(sample: dict[str, Any]) -> None:
        samples.append(sample)
        if len(samples) >= 2:
            got_two.set()

    usage = reader().usage(tree.pid)
    assert usage is not None and len(usage.pids) == 2  # the parent and its child
    with ResourceSampler(report, tree.pid, interval_seconds=0.2, reader=reader(), gpu=None):
        assert got_two.wait(60)
    assert len(samples) >= 3  # two on the way, one at the end
    for sample in samples:
        assert sample["memory_bytes"] >= 96 * MIB  # the child's block counts
        assert "gpu_utilization" not in sample and "network_rx_bytes" not in sample
    # the child spins: the tree's CPU use shows (a share of a core on a busy machine)
    assert max(s["cpu_millicores"] for s in samples) > 50


def test_a_finished_tree_gives_no_sample() -> None:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert ResourceSampler(lambda s: None, done.pid, gpu=None).sample() is None


def test_a_job_in_the_daemons_network_namespace_reports_no_network_counters() -> None:
    assert own_network_counters(os.getpid()) is None


def test_nvidia_smi_rows_give_the_trees_gpus_only() -> None:
    apps = [["101", "GPU-a", "2048"], ["202", "GPU-b", "1024"], ["303", "GPU-a", "512"]]
    gpus = [["GPU-a", "80"], ["GPU-b", "30"], ["GPU-c", "100"]]
    assert parse_smi(apps, gpus, frozenset({101, 303})) == (80.0, 2560 * MIB)
    assert parse_smi(apps, gpus, frozenset({101, 202})) == (55.0, 3072 * MIB)
    assert parse_smi(apps, gpus, frozenset({999})) is None


def test_a_failing_report_does_not_stop_sampling() -> None:
    calls: list[float] = []

    def report(sample: dict[str, Any]) -> None:
        calls.append(time.monotonic())
        raise RuntimeError("node away")

    with ResourceSampler(report, os.getpid(), interval_seconds=0.05, gpu=None):
        deadline = time.monotonic() + 60
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(calls) >= 3
