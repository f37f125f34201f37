"""What a provider advertises it can export: a real trial export per installed format
(child processes, Ultralytics offline, auto-install off), cached by package versions; and
the executor producing each format this installation has (the `export-*` extras a test
machine lacks are skipped by name, with the extra to install)."""

from __future__ import annotations

import json

import pytest

from marketplace.datasets.synthetic import write_classification_dataset
from marketplace.exports import BASE_FORMATS, FORMATS
from worker.executors import JobSpec, RecordingReporter
from worker.executors.yolo import YoloExecutor
from worker.executors.yolo.exports import CACHE_NAME, candidates, export_formats, run_trials


def test_the_trial_finds_the_train_extras_formats_and_caches_them(yolo_config_dir, tmp_path):
    found = export_formats(tmp_path, cuda=False)
    assert set(found) >= BASE_FORMATS
    assert set(found) <= {"pt", *candidates(cuda=False)}
    cache = json.loads((tmp_path / CACHE_NAME).read_text())
    assert cache["formats"] == found
    assert cache["key"]["ultralytics"] and cache["key"]["torch"]

    # the cached answer is the one given while the key matches (no new trial)...
    cache["formats"] = ["pt", "onnx"]
    (tmp_path / CACHE_NAME).write_text(json.dumps(cache))
    assert export_formats(tmp_path, cuda=False) == ["onnx", "pt"]
    # ...and a changed installation (another key) runs the trials again
    cache["key"]["torch"] = "0.0.0"
    (tmp_path / CACHE_NAME).write_text(json.dumps(cache))
    assert export_formats(tmp_path, cuda=False) == found


def test_a_format_whose_packages_are_missing_fails_its_trial_without_installing(
    yolo_config_dir, tmp_path
):
    missing = [n for n in ("openvino", "mnn", "paddle") if n not in candidates(cuda=False)]
    if not missing:
        pytest.skip("every probed extra is installed here")
    results = run_trials(["torchscript", missing[0]], tmp_path)
    assert results["torchscript"] is True
    assert isinstance(results[missing[0]], str)  # why, never a pip install at run time
    assert missing[0] not in candidates(cuda=False)


def test_an_operator_may_name_the_formats(monkeypatch, tmp_path):
    monkeypatch.setenv("DCM_EXPORT_FORMATS", "onnx, tfjs, gif")
    assert export_formats(tmp_path) == ["litert", "onnx", "pt"]
    assert not (tmp_path / CACHE_NAME).exists()


EXPORTABLE = [n for n, f in FORMATS.items() if f.extra not in (None, "train") and not f.needs_gpu]


@pytest.mark.parametrize("fmt", EXPORTABLE)
def test_the_executor_exports_each_installed_format(yolo_config_dir, tmp_path, fmt):
    if fmt not in candidates(cuda=False):
        pytest.skip(f"{fmt}: install the {FORMATS[fmt].extra} extra")
    dataset = write_classification_dataset(tmp_path / "data", classes=("a", "b"), train=4, val=2)
    job = JobSpec(
        "job_1",
        1,
        "yolo_training",
        {"model": "yolov8n-cls", "epochs": 1, "imgsz": 32, "export_format": fmt},
        dataset,
    )
    result = YoloExecutor(config_dir=yolo_config_dir, device="cpu").run(
        job, tmp_path / "work", RecordingReporter()
    )
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    exported = metrics["export"]["file"]
    assert metrics["export"]["format"] == fmt
    assert exported.startswith("weights/best") and exported.rstrip("/").endswith(
        FORMATS[fmt].suffix.rstrip("/")
    ), exported
    assert (result.output_dir / exported).exists()
    assert any(a.startswith(exported.rstrip("/")) for a in result.artifacts)
