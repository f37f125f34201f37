"""The executor's steps that need no Ultralytics: the run plan, collecting the weights, and
watching a training thread (a stand-in thread writes the events a trainer would)."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from marketplace.training import TrainingSpec, resolve_model
from worker.executors import RecordingReporter
from worker.executors.yolo.callbacks import EventFeed, RunLog
from worker.executors.yolo.dataset import PreparedDataset
from worker.executors.yolo.devices import choose_workers
from worker.executors.yolo.executor import RunPlan, YoloExecutor, collect_weights, watch_training

CHOICE = resolve_model("yolov8n", "detect")
PREPARED = PreparedDataset("detect", Path("data.yaml"), ("cat", "dog"), 40, 10)


def _spec(**overrides) -> TrainingSpec:
    return TrainingSpec.from_mapping({"model": "yolov8n", "epochs": 2, **overrides})


def test_plan_on_cpu_uses_local_weights_when_kept(tmp_path):
    (tmp_path / "yolov8n.pt").write_bytes(b"weights")
    executor = YoloExecutor(weights_dir=tmp_path, config_dir=tmp_path, device="cpu")
    assert executor.plan(_spec(batch=8), CHOICE, PREPARED) == RunPlan(
        device="cpu", batch=8, workers=choose_workers(), amp=False, weights=tmp_path / "yolov8n.pt"
    )


def test_plan_on_gpus_turns_mixed_precision_on(tmp_path):
    executor = YoloExecutor(config_dir=tmp_path, device="0,1")
    plan = executor.plan(_spec(), CHOICE, PREPARED)
    assert (plan.device, plan.batch, plan.amp) == ("0,1", 32, True)


def test_plan_trains_from_scratch_without_weights_or_when_asked(tmp_path):
    executor = YoloExecutor(weights_dir=tmp_path, config_dir=tmp_path, device="cpu")
    assert executor.plan(_spec(), CHOICE, PREPARED).weights is None  # none kept
    (tmp_path / "yolov8n.pt").write_bytes(b"weights")
    assert executor.plan(_spec(pretrained=False), CHOICE, PREPARED).weights is None


def test_weights_and_results_are_collected(tmp_path):
    run, output = tmp_path / "run", tmp_path / "output"
    (run / "weights").mkdir(parents=True)
    (output / "weights").mkdir(parents=True)
    for name in ("best.pt", "last.pt"):
        (run / "weights" / name).write_bytes(name.encode())
    (run / "results.csv").write_text("epoch\n1\n")
    collect_weights(run, output)
    assert (output / "weights" / "best.pt").read_bytes() == b"best.pt"
    assert (output / "results.csv").read_text() == "epoch\n1\n"


def test_training_without_best_weights_is_an_error(tmp_path):
    (tmp_path / "run" / "weights").mkdir(parents=True)
    (tmp_path / "run" / "weights" / "last.pt").write_bytes(b"x")
    with pytest.raises(RuntimeError, match="no best.pt"):
        collect_weights(tmp_path / "run", tmp_path)


def _fake_training(feed: EventFeed, epochs: int, release: threading.Event) -> threading.Thread:
    """A thread that trains like Ultralytics would, as far as the executor can tell: the
    hook's callback at each epoch end, then the next epoch once `release` is set, unless
    the hook asked the trainer to stop."""
    hook = feed.hook()

    def train() -> None:
        for epoch in range(epochs):
            trainer = SimpleNamespace(
                epoch=epoch, epochs=epochs, epoch_time=0.1, metrics={"train/box_loss": 1.0}
            )
            trainer.stop = False
            hook.on_fit_epoch_end(trainer)
            while not release.is_set():
                if feed.cancel_path.exists():
                    return  # at the next epoch end the hook sets trainer.stop
                time.sleep(0.01)
            if trainer.stop:
                return

    return threading.Thread(target=train, daemon=True)


def test_watching_forwards_each_epoch_until_the_thread_ends(tmp_path):
    reporter = RecordingReporter()
    feed = EventFeed(tmp_path, RunLog(io.StringIO(), reporter))
    release = threading.Event()
    release.set()
    thread = _fake_training(feed, 3, release)
    thread.start()
    assert watch_training(thread, feed) is False
    assert [c[1] for c in reporter.progress_calls] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]


def test_cancel_is_passed_to_the_training_thread(tmp_path):
    reporter = RecordingReporter(cancel_after_progress=1)
    feed = EventFeed(tmp_path, RunLog(io.StringIO(), reporter))
    thread = _fake_training(feed, 5, threading.Event())
    thread.start()
    assert watch_training(thread, feed) is True
    assert feed.cancel_path.exists()
    assert len(feed.epochs) == 1
    assert any("cancel requested" in line for _, line in reporter.lines)
