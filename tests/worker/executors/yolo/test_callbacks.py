"""Training callbacks, the events file they share with the executor, and the run log
(fake trainers, no Ultralytics)."""

from __future__ import annotations

import io
import json
import logging
import pickle
from types import SimpleNamespace

from worker.executors import RecordingReporter
from worker.executors.yolo.callbacks import EventFeed, RunLog, TrainingHook, flatten_metrics


class _Trainer(SimpleNamespace):
    """What the hook reads from an Ultralytics trainer."""

    def __init__(self, epoch: int = 0, epochs: int = 3, **metrics: float) -> None:
        super().__init__(
            epoch=epoch,
            epochs=epochs,
            epoch_time=1.5,
            tloss=None,
            metrics={"metrics/mAP50(B)": 0.25, **metrics},
            stop=False,
            final_calls=0,
        )
        self.final_eval = self._final_eval

    def _final_eval(self) -> None:
        self.final_calls += 1

    def label_loss_items(self, tloss, prefix):
        return {f"{prefix}/box_loss": 1.25}


def _events(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_metric_names_are_shortened():
    raw = {
        "metrics/mAP50(B)": "0.5",
        "metrics/accuracy_top1": 0.9,
        "train/box_loss": 1,
        "val/cls_loss": 2,
        "lr/pg0": 0.01,
        "fitness": 0.3,
        "note": "n/a",
    }
    assert flatten_metrics(raw) == {"mAP50": 0.5, "top1": 0.9, "box_loss": 1.0, "val_cls_loss": 2.0}


def test_each_epoch_end_appends_one_event(tmp_path):
    hook = TrainingHook(tmp_path / "events.jsonl", tmp_path / "cancel.flag")
    hook.on_fit_epoch_end(_Trainer(epoch=0))
    hook.on_fit_epoch_end(_Trainer(epoch=1))
    events = _events(tmp_path / "events.jsonl")
    assert [(e["kind"], e["epoch"], e["epochs"]) for e in events] == [
        ("epoch", 1, 3),
        ("epoch", 2, 3),
    ]
    assert events[0]["metrics"] == {"box_loss": 1.25, "mAP50": 0.25}
    assert events[0]["epoch_seconds"] == 1.5


def test_cancel_flag_stops_training_at_the_epoch_end(tmp_path):
    hook = TrainingHook(tmp_path / "events.jsonl", tmp_path / "cancel.flag")
    (tmp_path / "cancel.flag").touch()
    trainer = _Trainer()
    hook.on_fit_epoch_end(trainer)
    assert trainer.stop is True
    assert _events(tmp_path / "events.jsonl")[0]["stopping"] is True


def test_final_validation_is_reported_as_final_and_skipped_after_a_cancel(tmp_path):
    hook = TrainingHook(tmp_path / "events.jsonl", tmp_path / "cancel.flag")
    trainer = _Trainer(epoch=2)
    hook.on_train_start(trainer)
    trainer.final_eval()
    hook.on_fit_epoch_end(trainer)
    assert trainer.final_calls == 1
    assert _events(tmp_path / "events.jsonl")[-1]["kind"] == "final"

    cancelled = TrainingHook(tmp_path / "other.jsonl", tmp_path / "cancel.flag")
    (tmp_path / "cancel.flag").touch()
    trainer = _Trainer()
    cancelled.on_train_start(trainer)
    trainer.final_eval()
    assert trainer.final_calls == 0


def test_only_rank_zero_writes_events(tmp_path, monkeypatch):
    hook = TrainingHook(tmp_path / "events.jsonl", tmp_path / "cancel.flag")
    monkeypatch.setenv("RANK", "1")
    hook.on_fit_epoch_end(_Trainer())
    assert not (tmp_path / "events.jsonl").exists()
    monkeypatch.setenv("RANK", "0")
    hook.on_fit_epoch_end(_Trainer())
    assert len(_events(tmp_path / "events.jsonl")) == 1


def test_hook_survives_pickling_for_the_multi_gpu_launcher(tmp_path):
    hook = pickle.loads(pickle.dumps(TrainingHook(tmp_path / "e.jsonl", tmp_path / "c.flag")))
    hook.on_fit_epoch_end(_Trainer())
    assert len(_events(tmp_path / "e.jsonl")) == 1


def _feed(tmp_path, reporter=None):
    reporter = reporter or RecordingReporter()
    log = RunLog(io.StringIO(), reporter)
    return EventFeed(tmp_path, log), reporter, log


def test_feed_reports_epochs_as_progress_and_logs_the_final_validation(tmp_path):
    feed, reporter, log = _feed(tmp_path)
    hook = feed.hook()
    trainer = _Trainer(epoch=0, epochs=2)
    hook.on_train_start(trainer)
    hook.on_fit_epoch_end(trainer)
    feed.pump()
    trainer.metrics = {"metrics/mAP50(B)": 0.75}
    trainer.final_eval()  # Ultralytics validates best.pt, then calls the epoch-end callbacks
    hook.on_fit_epoch_end(trainer)
    feed.pump()
    assert reporter.progress_calls == [(47.5, "Epoch 1/2", {"box_loss": 1.25, "mAP50": 0.25})]
    assert [line for _, line in reporter.lines] == [
        "Epoch 1/2: box_loss=1.25 mAP50=0.25 (1.50 s)",
        "Final validation (best.pt): box_loss=1.25 mAP50=0.75",
    ]
    assert feed.final_metrics() == {"box_loss": 1.25, "mAP50": 0.75}
    assert len(feed.epochs) == 1


def test_feed_leaves_a_half_written_line_for_the_next_read(tmp_path):
    feed, reporter, _ = _feed(tmp_path)
    event = {"kind": "epoch", "epoch": 1, "epochs": 1, "epoch_seconds": 1.0, "metrics": {}}
    text = json.dumps(event) + "\n"
    with feed.events_path.open("w") as fh:
        fh.write(text[:10])
    feed.pump()
    assert feed.events == []
    with feed.events_path.open("a") as fh:
        fh.write(text[10:])
    feed.pump()
    assert feed.events == [event]
    assert feed.final_metrics() == {}


def test_feed_clears_what_a_previous_attempt_left(tmp_path):
    (tmp_path / "events.jsonl").write_text("stale\n")
    (tmp_path / "cancel.flag").touch()
    feed, _, _ = _feed(tmp_path)
    feed.pump()
    assert feed.events == [] and not feed.cancel_path.exists()
    feed.request_cancel()
    assert feed.cancel_path.exists()


class _BrokenReporter(RecordingReporter):
    def log(self, line, level="info"):
        raise ConnectionError("node unreachable")

    def progress(self, percent, message, metrics=None):
        raise ConnectionError("node unreachable")


def test_reporter_failures_are_noted_in_the_log_file_and_do_not_raise():
    file = io.StringIO()
    log = RunLog(file, _BrokenReporter())
    log.line("Epoch 1/1")
    log.progress(50.0, "Epoch 1/1")
    lines = file.getvalue().splitlines()
    assert lines[0] == "Epoch 1/1"
    assert lines[1].startswith("dcm: reporter.log failed: ConnectionError")
    assert "dcm: reporter.progress failed: ConnectionError" in lines[2]


def test_captured_log_lines_reach_file_and_reporter_without_colour_codes():
    file, reporter = io.StringIO(), RecordingReporter()
    log = RunLog(file, reporter)
    logger = logging.getLogger("test-yolo-capture")
    logger.setLevel(logging.INFO)
    with log.capturing("test-yolo-capture"):
        logger.info("\x1b[1mStarting\x1b[0m training\n\n  next line")
        logger.warning("careful")
    logger.info("after the block")
    assert reporter.lines == [
        ("info", "Starting training"),
        ("info", "  next line"),
        ("warning", "careful"),
    ]
    assert file.getvalue() == "Starting training\n  next line\ncareful\n"
