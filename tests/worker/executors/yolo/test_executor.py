"""The YOLO executor training for real (Ultralytics on CPU, tiny synthetic datasets)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from marketplace.datasets.synthetic import write_classification_dataset, write_detection_dataset
from worker.executors import ExecutionCancelled, JobSpec, RecordingReporter
from worker.executors.yolo import YoloExecutor

OFFLINE_VARS = ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_CONFIG_DIR")


def _files(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*")}


@pytest.fixture(scope="module")
def detection_run(yolo_config_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("detect")
    dataset = write_detection_dataset(base / "dataset", train=16, val=8, size=64)
    before = _files(dataset)
    env_before = {k: os.environ.get(k) for k in OFFLINE_VARS}
    reporter = RecordingReporter()
    job = JobSpec(
        "job_7",
        1,
        "yolo_training",
        {
            "model": "yolov8n",
            "epochs": 2,
            "imgsz": 64,
            "exportFormat": "ONNX",
            "classes": "red,blue",
        },
        dataset,
    )
    result = YoloExecutor(config_dir=yolo_config_dir, device="cpu").run(
        job, base / "work", reporter
    )
    return {
        "result": result,
        "reporter": reporter,
        "dataset": dataset,
        "dataset_before": before,
        "env_before": env_before,
    }


def test_detection_run_produces_the_artifact_directory(detection_run):
    result = detection_run["result"]
    assert result.result_type == "yolo_model"
    assert result.artifacts == (
        "metrics.json",
        "results.csv",
        "train.log",
        "weights/best.onnx",
        "weights/best.pt",
        "weights/last.pt",
    )
    assert sorted(_files(result.output_dir)) == sorted(
        [*result.artifacts, "weights"]
    )  # nothing else: the directory is pinned as it is
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    assert metrics["task"] == "detect"
    assert metrics["model_config"] == "yolov8n.yaml"
    assert metrics["epochs_completed"] == 2
    assert len(metrics["epoch_seconds"]) == 2 and all(s > 0 for s in metrics["epoch_seconds"])
    assert metrics["device"] == "cpu" and metrics["amp"] is False
    assert metrics["batch"] == 16  # default 16, capped by the 16 training images
    assert metrics["classes"] == ["red", "blue"]
    assert metrics["export"]["file"] == "weights/best.onnx"
    assert {"mAP50", "mAP50-95"} <= set(metrics["final"])
    rows = (result.output_dir / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header + one row per epoch


def test_progress_is_reported_per_epoch_with_losses(detection_run):
    calls = detection_run["reporter"].progress_calls
    epochs = [c for c in calls if c[1].startswith("Epoch")]
    assert [c[1] for c in epochs] == ["Epoch 1/2", "Epoch 2/2"]
    percents = [c[0] for c in calls]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert 0 < epochs[0][0] < epochs[1][0] < 100
    for _, _, metrics in epochs:
        for loss in ("box_loss", "cls_loss", "dfl_loss"):
            assert math.isfinite(metrics[loss]) and metrics[loss] > 0
        assert "mAP50" in metrics and "mAP50-95" in metrics


def test_each_epochs_training_metrics_are_reported(detection_run):
    result, reporter = detection_run["result"], detection_run["reporter"]
    assert [epoch for epoch, _ in reporter.training] == [1, 2]
    per_epoch = json.loads((result.output_dir / "metrics.json").read_text())["per_epoch"]
    assert [{"epoch": e, **m} for e, m in reporter.training] == per_epoch
    for _, metrics in reporter.training:
        assert metrics["box_loss"] > 0 and "mAP50" in metrics and "val_box_loss" in metrics


def test_training_log_reaches_reporter_and_file(detection_run):
    result, reporter = detection_run["result"], detection_run["reporter"]
    lines = [line for _, line in reporter.lines]
    log_text = (result.output_dir / "train.log").read_text()
    assert log_text.splitlines() == lines
    assert any(line.startswith("Epoch 2/2: ") for line in lines)
    assert any("Starting training for 2 epochs" in line for line in lines)
    assert "\x1b[" not in log_text  # colour codes stripped


def test_onnx_export_is_loadable(detection_run):
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(
        str(detection_run["result"].output_dir / "weights" / "best.onnx"),
        providers=["CPUExecutionProvider"],
    )
    (model_input,) = session.get_inputs()
    (output,) = session.run(None, {model_input.name: np.zeros((1, 3, 64, 64), np.float32)})
    assert output.shape[:2] == (1, 4 + 2)  # boxes + two class scores per anchor


def test_run_leaves_dataset_and_environment_untouched(detection_run):
    assert _files(detection_run["dataset"]) == detection_run["dataset_before"]
    assert {k: os.environ.get(k) for k in OFFLINE_VARS} == detection_run["env_before"]


def test_classification_run_with_torchscript_export(yolo_config_dir, tmp_path):
    dataset = write_classification_dataset(
        tmp_path / "dataset", classes=("red", "blue"), train=8, val=4
    )
    reporter = RecordingReporter()
    job = JobSpec(
        "job_8",
        1,
        "yolo_training",
        {"model": "yolo v11", "epochs": 2, "imgsz": 32, "export_format": "torchscript"},
        dataset,
    )
    result = YoloExecutor(config_dir=yolo_config_dir, device="cpu").run(
        job, tmp_path / "work", reporter
    )
    assert "weights/best.torchscript" in result.artifacts
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    assert metrics["task"] == "classify"
    assert metrics["model_config"] == "yolo11n-cls.yaml"
    assert metrics["classes"] == ["blue", "red"]
    assert 0.0 <= metrics["final"]["top1"] <= 1.0
    epochs = [c for c in reporter.progress_calls if c[1].startswith("Epoch")]
    assert len(epochs) == 2 and all("top1" in c[2] for c in epochs)

    import torch

    scripted = torch.jit.load(str(result.output_dir / "weights" / "best.torchscript"))
    assert scripted(torch.zeros(1, 3, 32, 32)).shape == (1, 2)


def test_cancel_stops_training_at_an_epoch_boundary(yolo_config_dir, tmp_path):
    dataset = write_detection_dataset(tmp_path / "dataset", train=8, val=4, size=64)
    reporter = RecordingReporter(cancel_after_progress=1)  # cancel once epoch 1 is reported
    job = JobSpec(
        "job_9", 1, "yolo_training", {"model": "yolov8n", "epochs": 5, "imgsz": 64}, dataset
    )
    with pytest.raises(ExecutionCancelled) as caught:
        YoloExecutor(config_dir=yolo_config_dir, device="cpu").run(job, tmp_path / "work", reporter)
    completed = caught.value.completed_epochs
    assert completed is not None and 1 <= completed < 5
    messages = [c[1] for c in reporter.progress_calls]
    assert messages == [f"Epoch {i}/5" for i in range(1, completed + 1)]
    assert not (tmp_path / "work" / "output" / "metrics.json").exists()
    assert any("cancel requested" in line for _, line in reporter.lines)


class _FailingProgressReporter(RecordingReporter):
    """A reporter whose node is unreachable for progress reports."""

    def progress(self, percent, message, metrics=None):
        raise ConnectionError("node unreachable")


def test_local_weights_are_used_and_reporter_failures_do_not_stop_training(
    yolo_config_dir, detection_run, tmp_path
):
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    (weights_dir / "yolov8n.pt").write_bytes(
        (detection_run["result"].output_dir / "weights" / "best.pt").read_bytes()
    )
    dataset = write_detection_dataset(tmp_path / "dataset", train=4, val=2, size=64)
    job = JobSpec(
        "job_10", 1, "yolo_training", {"model": "YOLOv8n", "epochs": 1, "imgsz": 64}, dataset
    )
    result = YoloExecutor(config_dir=yolo_config_dir, weights_dir=weights_dir, device="cpu").run(
        job, tmp_path / "work", _FailingProgressReporter()
    )
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    assert metrics["pretrained_weights"] == "yolov8n.pt"
    assert "reporter.progress failed" in (result.output_dir / "train.log").read_text()
    assert metrics["batch"] == 4  # default 16, never above the 4 training images
    assert metrics["export"]["file"] is None  # pt: no export
