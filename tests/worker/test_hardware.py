"""Hardware detection: the capabilities a provider registers with."""

from __future__ import annotations

import json

from worker.hardware import detect_gpus, detect_hardware


def test_detects_cpu_memory_and_disk_of_the_work_dir(tmp_path):
    info = detect_hardware(tmp_path / "not-yet-created")
    assert info["cpu_cores"] >= 1
    assert info["memory_bytes"] > 0
    assert info["disk_free_bytes"] > 0
    assert info["disk_path"].endswith("not-yet-created")
    assert isinstance(info["gpus"], list)
    json.dumps(info)  # registered as JSON


def test_gpus_describe_name_and_memory_when_present():
    info = detect_gpus()
    for gpu in info["gpus"]:
        assert gpu["name"] and gpu["memory_bytes"] > 0
    if info["gpus"]:
        assert info["cuda_version"] and info["gpu_source"] in {"nvml", "torch"}
    else:
        assert info["cuda_version"] is None and info["gpu_source"] is None


def test_gpus_hidden_by_cuda_visible_devices_are_left_out(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert detect_gpus()["gpus"] == []
