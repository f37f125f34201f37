"""What training tells the executor, and how it reaches the reporter.

- `TrainingHook`: Ultralytics callbacks that append one JSON line per epoch (and one for the
  final validation of `best.pt`) to an events file, and stop training at the next epoch
  boundary once a cancel flag file exists. Multi-GPU runs go through Ultralytics' DDP
  launcher, which pickles the callbacks into a child process (with `cloudpickle`, part of
  the `[train]` extra; `worker` must be importable there, as it is once the package is
  installed), so the hook talks to the executor only through those two files, and only
  rank 0 writes events.
- `EventFeed`: the executor's side of those files: reads complete new lines, logs each
  epoch, reports it as progress (epochs fill 0-95 %; export and packaging the rest) and
  its metrics as the epoch's training metrics (`Reporter.report_training`).
- `RunLog`: `train.log` plus the reporter. Every line goes to both; a reporter that raises
  is noted in `train.log` and training goes on. `LogCapture` collects Ultralytics' log
  records from the training thread so that reporter calls happen on the calling thread.
- `flatten_metrics`: Ultralytics' metric keys to short, stable ones.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from worker.executors.base import Reporter

TRAIN_PERCENT_SPAN = 95.0  # epochs fill 0-95 %; export and packaging the rest
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class TrainingHook:
    """Ultralytics callbacks that write per-epoch events to a JSON-lines file and stop training
    at the next epoch boundary once the cancel flag file exists.

    Picklable (paths only) so that Ultralytics' multi-GPU launcher can carry it into its child.
    """

    def __init__(self, events_path: Path, cancel_path: Path) -> None:
        self.events_path = str(events_path)
        self.cancel_path = str(cancel_path)
        self._in_final_eval = False

    def _emit(self, event: dict[str, Any]) -> None:
        if os.environ.get("RANK", "-1") not in ("-1", "0"):
            return  # DDP: every rank runs the callbacks; rank 0 speaks for them
        with open(self.events_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, sort_keys=True) + "\n")

    def _cancelled(self) -> bool:
        return os.path.exists(self.cancel_path)

    def on_train_start(self, trainer: Any) -> None:
        original = trainer.final_eval

        def final_eval() -> None:
            if self._cancelled():
                return  # no point validating best.pt for a cancelled job
            self._in_final_eval = True
            original()

        trainer.final_eval = final_eval  # instance attribute: _do_train calls self.final_eval()

    def on_fit_epoch_end(self, trainer: Any) -> None:
        metrics = {}
        with contextlib.suppress(Exception):
            metrics.update(trainer.label_loss_items(trainer.tloss, prefix="train"))
        metrics.update(trainer.metrics or {})
        event = {
            "kind": "final" if self._in_final_eval else "epoch",
            "epoch": int(trainer.epoch) + 1,
            "epochs": int(trainer.epochs),
            "epoch_seconds": float(trainer.epoch_time or 0.0),
            "metrics": flatten_metrics(metrics),
        }
        if not self._in_final_eval and self._cancelled():
            trainer.stop = True
            event["stopping"] = True
        self._emit(event)


def flatten_metrics(raw: Mapping[str, Any]) -> dict[str, float]:
    """Ultralytics' metric keys -> short, stable ones (`metrics/mAP50(B)` -> `mAP50`,
    `train/box_loss` -> `box_loss`, `val/box_loss` -> `val_box_loss`, top-1 -> `top1`)."""
    out: dict[str, float] = {}
    for key, value in raw.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if key.startswith("lr/") or key == "fitness":
            continue
        name = key
        if name.startswith("metrics/"):
            name = name[len("metrics/") :].removesuffix("(B)")
            name = {"accuracy_top1": "top1", "accuracy_top5": "top5"}.get(name, name)
        elif name.startswith("train/"):
            name = name[len("train/") :]
        elif name.startswith("val/"):
            name = "val_" + name[len("val/") :]
        out[name] = round(number, 6) if math.isfinite(number) else number
    return out


class LogCapture(logging.Handler):
    """Collects log records (from the training thread) for the calling thread, colour codes
    stripped, one entry per non-blank line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            text = _ANSI.sub("", record.getMessage())
            level = "warning" if record.levelno >= logging.WARNING else "info"
            if record.levelno >= logging.ERROR:
                level = "error"
            for line in text.splitlines():
                if line.strip():
                    self.lines.put((level, line.rstrip()))


class RunLog:
    """`train.log` and the reporter, written together from the calling thread."""

    def __init__(self, file: IO[str], report: Reporter) -> None:
        self.file = file
        self.report = report
        self.capture = LogCapture()

    def line(self, text: str, level: str = "info") -> None:
        self.file.write(text + "\n")
        try:
            self.report.log(text, level)
        except Exception as exc:  # a reporter failure must not orphan the training thread
            self.file.write(f"dcm: reporter.log failed: {exc!r}\n")

    def progress(
        self, percent: float, message: str, metrics: Mapping[str, float] | None = None
    ) -> None:
        try:
            self.report.progress(percent, message, metrics)
        except Exception as exc:  # keep training; the next report may get through
            self.line(f"dcm: reporter.progress failed: {exc!r}", "warning")

    def training(self, epoch: int, metrics: Mapping[str, float]) -> None:
        report = getattr(self.report, "report_training", None)
        if report is None:
            return  # a reporter from before training metrics existed
        try:
            report(epoch, metrics)
        except Exception as exc:  # keep training, as for progress
            self.line(f"dcm: reporter.report_training failed: {exc!r}", "warning")

    def drain(self) -> None:
        """Forward the captured log lines collected so far."""
        while True:
            try:
                level, text = self.capture.lines.get_nowait()
            except queue.Empty:
                return
            self.line(text, level)

    @contextlib.contextmanager
    def capturing(self, logger_name: str) -> Iterator[None]:
        """Capture `logger_name`'s records for the block; forward what is left at its end."""
        logger = logging.getLogger(logger_name)
        logger.addHandler(self.capture)
        try:
            yield
        finally:
            logger.removeHandler(self.capture)
            self.drain()


class EventFeed:
    """The events file and cancel flag a `TrainingHook` shares with the executor."""

    def __init__(self, workdir: Path, log: RunLog) -> None:
        self.events_path = workdir / "events.jsonl"
        self.cancel_path = workdir / "cancel.flag"
        self.log = log
        self.events: list[dict[str, Any]] = []
        self._offset = 0
        for stale in (self.events_path, self.cancel_path):
            stale.unlink(missing_ok=True)

    def hook(self) -> TrainingHook:
        return TrainingHook(self.events_path, self.cancel_path)

    def request_cancel(self) -> None:
        self.cancel_path.touch()

    def pump(self) -> None:
        """Read the events written since the last call; log each, report epochs as progress."""
        if not self.events_path.exists():
            return
        with self.events_path.open("rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # leave a half-written line for next time
        self._offset += len(complete)
        for raw in complete.splitlines():
            event = json.loads(raw)
            self.events.append(event)
            metrics = event["metrics"]
            summary = " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
            if event["kind"] == "final":
                self.log.line(f"Final validation (best.pt): {summary}")
                continue
            message = f"Epoch {event['epoch']}/{event['epochs']}"
            self.log.line(f"{message}: {summary} ({event['epoch_seconds']:.2f} s)")
            percent = round(TRAIN_PERCENT_SPAN * event["epoch"] / max(event["epochs"], 1), 1)
            self.log.progress(percent, message, metrics)
            self.log.training(event["epoch"], metrics)

    @property
    def epochs(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == "epoch"]

    def final_metrics(self) -> dict[str, float]:
        """The final validation's metrics, else the last epoch's ({} before any)."""
        final = next((e for e in reversed(self.events) if e["kind"] == "final"), None)
        epochs = self.epochs
        return (final or (epochs[-1] if epochs else {})).get("metrics", {})
