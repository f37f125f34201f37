"""`YoloExecutor`: one training job, from parameters to the output directory.

`run(job, workdir, report)`, in named steps:
1. parse the job's parameters (`TrainingSpec`) and build the dataset view (`dataset.py`),
   refusing bad ones before any compute is spent; resolve the model for the task;
2. `plan`: device, batch, dataloader workers, mixed precision and local weights (`devices.py`);
3. `train`: Ultralytics trains in a background thread while the calling thread forwards log
   lines and per-epoch progress to the reporter and polls for cancellation (`callbacks.py`);
   a cancel stops training at the next epoch boundary and raises `ExecutionCancelled`;
4. `collect_weights`, `export` (to the requested format), `write_metrics`: one output
   directory with fixed names: `weights/best.pt`, `weights/last.pt`, the export beside them
   as Ultralytics names it (`weights/best.onnx`, `weights/best_openvino_model/`...),
   `results.csv`, `metrics.json`, `train.log`.

One YOLO run at a time per process: Ultralytics' logger and settings and os.environ are process
globals, so concurrent `run()` calls queue on a lock. A provider that trains several jobs at
once should run them in separate processes.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from marketplace.errors import ValidationFailed
from marketplace.training import ModelChoice, TrainingSpec, resolve_model
from worker.executors.base import ExecutionCancelled, ExecutionResult, JobSpec, Reporter
from worker.executors.yolo.callbacks import TRAIN_PERCENT_SPAN, EventFeed, RunLog
from worker.executors.yolo.dataset import PreparedDataset, prepare_dataset
from worker.executors.yolo.devices import (
    choose_batch,
    choose_device,
    choose_workers,
    device_name,
)
from worker.executors.yolo.exports import export_in_child
from worker.executors.yolo.offline import (
    TF_CWD_FORMATS,
    default_config_dir,
    import_ultralytics,
    offline_environment,
)

POLL_SECONDS = 0.2
# One training at a time per process: Ultralytics' logger, settings and os.environ are global.
_RUN_LOCK = threading.Lock()


@dataclass(frozen=True)
class RunPlan:
    """How one run trains, decided before it starts (logged, and kept in metrics.json)."""

    device: str
    batch: int
    workers: int
    amp: bool
    weights: Path | None  # local pretrained weights, None: from scratch


@dataclass(frozen=True)
class Trained:
    """What the training thread left: the run directory and how long it took."""

    run_dir: Path
    seconds: float
    completed_epochs: int


class YoloExecutor:
    """Trains an Ultralytics YOLO model for a `JobSpec` (see the module docstring)."""

    job_types: ClassVar[frozenset[str]] = frozenset(
        {"yolo_training", "image_processing", "model_training"}
    )
    result_type = "yolo_model"

    @staticmethod
    def missing() -> str | None:
        """Why this machine cannot train (checked at the daemon's start), or None."""
        import importlib.util

        for module in ("ultralytics", "torch"):
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (pip install -e '.[train]')"
        return None

    def __init__(
        self,
        *,
        weights_dir: Path | None = None,
        config_dir: Path | None = None,
        device: str | None = None,
        plots: bool = False,
    ) -> None:
        """
        Args:
            weights_dir: local pretrained weights (`<name>.pt`); default `DCM_WEIGHTS_DIR`.
            config_dir: Ultralytics' settings/fonts directory; default `default_config_dir()`.
            device: force a device (`"cpu"`, `"0"`); default all visible GPUs, else CPU.
            plots: let Ultralytics draw its plots (slower; they are not part of the artifacts).
        """
        env_weights = os.environ.get("DCM_WEIGHTS_DIR")
        self.weights_dir = weights_dir or (Path(env_weights) if env_weights else None)
        self.config_dir = config_dir or default_config_dir()
        self.device = device
        self.plots = plots

    # The daemon calls this; everything else is a step of it.
    def run(self, job: JobSpec, workdir: Path, report: Reporter) -> ExecutionResult:
        spec = TrainingSpec.from_mapping(job.spec)
        if job.dataset_dir is None:
            raise ValidationFailed("a training job needs a dataset")
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        prepared = prepare_dataset(
            Path(job.dataset_dir), workdir / "data", spec, job.dataset_layout
        )
        choice = resolve_model(spec.model, prepared.task)
        if report.should_cancel():
            raise ExecutionCancelled("cancelled before training", completed_epochs=0)

        output = workdir / "output"
        if output.exists():
            shutil.rmtree(output)
        (output / "weights").mkdir(parents=True)
        with (output / "train.log").open("w", encoding="utf-8") as log_file:
            log = RunLog(log_file, report)
            with _RUN_LOCK, offline_environment(self.config_dir):
                import_ultralytics(self.config_dir)
                with log.capturing("ultralytics"):
                    return self._train_and_package(spec, choice, prepared, workdir, output, log)

    def _train_and_package(
        self,
        spec: TrainingSpec,
        choice: ModelChoice,
        prepared: PreparedDataset,
        workdir: Path,
        output: Path,
        log: RunLog,
    ) -> ExecutionResult:
        plan = self.plan(spec, choice, prepared)
        log.line(_plan_line(choice, prepared, spec, plan))
        feed = EventFeed(workdir, log)
        trained = self.train(spec, choice, prepared, plan, workdir, feed)
        collect_weights(trained.run_dir, output)
        export = self.export(spec, plan, output, log, trained.completed_epochs)
        final = feed.final_metrics()
        write_metrics(output, spec, choice, prepared, plan, feed, trained, export)
        log.drain()
        log.line(f"dcm: finished {trained.completed_epochs} epochs in {trained.seconds:.1f} s")
        log.progress(100.0, "Finished", final)
        artifacts = tuple(
            sorted(p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file())
        )
        result_metrics = {
            **final,
            "epochs_completed": trained.completed_epochs,
            "train_seconds": round(trained.seconds, 3),
            "device": plan.device,
        }
        return ExecutionResult(output, result_metrics, self.result_type, artifacts)

    def capabilities(self) -> dict[str, Any]:
        """What this executor adds to the provider's registration: the export formats a
        trial export succeeded for here (cached; `exports.py`)."""
        from worker.executors.yolo.exports import export_formats

        return {"export_formats": export_formats(self.config_dir)}

    def plan(self, spec: TrainingSpec, choice: ModelChoice, prepared: PreparedDataset) -> RunPlan:
        """Device, batch, workers, mixed precision (GPU only) and local weights for a run."""
        device = choose_device(self.device)
        return RunPlan(
            device=device,
            batch=choose_batch(spec.batch, prepared.train_images, device),
            workers=choose_workers(),
            amp=device != "cpu",
            weights=self.local_weights(choice) if spec.pretrained else None,
        )

    def local_weights(self, choice: ModelChoice) -> Path | None:
        """The provider's `<model>.pt` in its weights directory, if it keeps one."""
        if self.weights_dir is None:
            return None
        path = self.weights_dir / choice.weights_file
        return path if path.is_file() else None

    def train(
        self,
        spec: TrainingSpec,
        choice: ModelChoice,
        prepared: PreparedDataset,
        plan: RunPlan,
        workdir: Path,
        feed: EventFeed,
    ) -> Trained:
        """Train in a background thread, forwarding logs and epochs from this one.

        Raises:
            ExecutionCancelled: the reporter asked to stop (honoured at an epoch boundary).
            Exception: whatever training raised.
        """
        from ultralytics import YOLO

        model = YOLO(choice.config, task=choice.task)
        if plan.weights is not None:
            model.load(str(plan.weights))
        hook = feed.hook()
        model.add_callback("on_train_start", hook.on_train_start)
        model.add_callback("on_fit_epoch_end", hook.on_fit_epoch_end)
        run_dir = workdir / "run"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        train_args = {
            "data": str(prepared.data),
            "epochs": spec.epochs,
            "imgsz": spec.imgsz,
            "batch": plan.batch,
            "device": plan.device,
            "workers": plan.workers,
            "amp": plan.amp,
            "project": str(workdir),
            "name": run_dir.name,
            "exist_ok": True,
            "plots": self.plots,
            "seed": spec.seed,
            "verbose": True,
        }
        failure: list[BaseException] = []

        def train() -> None:
            try:
                model.train(**train_args)
            except BaseException as exc:  # re-raised in the calling thread
                failure.append(exc)

        started = time.monotonic()
        thread = threading.Thread(target=train, name="yolo-train", daemon=True)
        thread.start()
        cancel_requested = watch_training(thread, feed)
        seconds = time.monotonic() - started
        completed = len(feed.epochs)
        if failure:
            raise failure[0]
        if cancel_requested:
            raise ExecutionCancelled(
                f"cancelled after {completed} of {spec.epochs} epochs", completed_epochs=completed
            )
        return Trained(run_dir, seconds, completed)

    def export(
        self, spec: TrainingSpec, plan: RunPlan, output: Path, log: RunLog, completed: int
    ) -> dict[str, Any]:
        """Export `best.pt` to the requested format (none for `pt`); the export's record for
        metrics.json. `ExecutionCancelled` if a cancel arrived meanwhile."""
        info: dict[str, Any] = {"format": spec.export_format, "file": None, "seconds": 0.0}
        if spec.export_format == "pt":
            return info
        from ultralytics import YOLO

        log.progress(TRAIN_PERCENT_SPAN + 2, f"Exporting to {spec.export_format}")
        started = time.monotonic()
        weights, device = output / "weights" / "best.pt", plan.device.split(",")[0]
        if spec.export_format in TF_CWD_FORMATS:  # they read a file from the current dir
            exported = export_in_child(
                weights, spec.export_format, spec.imgsz, device, self.config_dir
            )
        else:
            exported = YOLO(str(weights)).export(
                format=spec.export_format, imgsz=spec.imgsz, device=device
            )
        info["seconds"] = round(time.monotonic() - started, 3)
        exported_path = Path(str(exported))
        if not exported_path.exists():  # a file, or a folder (`best_openvino_model/`...)
            raise RuntimeError(f"export to {spec.export_format} produced no file")
        info["file"] = exported_path.relative_to(output).as_posix()
        log.line(f"dcm: exported {info['file']} in {info['seconds']} s")
        if log.report.should_cancel():
            raise ExecutionCancelled("cancelled during export", completed_epochs=completed)
        return info


def watch_training(thread: threading.Thread, feed: EventFeed) -> bool:
    """Until `thread` ends: forward its logs and events, pass a cancel on to it. Returns
    whether a cancel was requested."""
    log = feed.log
    cancel_requested = False
    try:
        while True:
            alive = thread.is_alive()
            log.drain()
            feed.pump()
            if not cancel_requested and log.report.should_cancel():
                cancel_requested = True
                feed.request_cancel()
                log.line("dcm: cancel requested, stopping at the end of this epoch", "warning")
            if not alive:
                return cancel_requested
            thread.join(POLL_SECONDS)
    except BaseException:
        feed.request_cancel()  # e.g. KeyboardInterrupt: let the thread stop at the epoch's end
        raise


def _plan_line(
    choice: ModelChoice, prepared: PreparedDataset, spec: TrainingSpec, plan: RunPlan
) -> str:
    weights = ", weights " + plan.weights.name if plan.weights else ", from scratch"
    return (
        f"dcm: {choice.task} {choice.name} ({choice.config}{weights}) on {plan.device}: "
        f"{prepared.train_images} train / {prepared.val_images} val images, "
        f"{len(prepared.names)} classes, epochs={spec.epochs} imgsz={spec.imgsz} "
        f"batch={plan.batch} workers={plan.workers} amp={plan.amp}"
    )


def collect_weights(run_dir: Path, output: Path) -> None:
    """Copy `best.pt` and `last.pt` (required) and `results.csv` (if any) into `output`."""
    weights_dir = run_dir / "weights"
    for name in ("best.pt", "last.pt"):
        if not (weights_dir / name).is_file():
            raise RuntimeError(f"training produced no {name}")
        shutil.copyfile(weights_dir / name, output / "weights" / name)
    if (run_dir / "results.csv").is_file():
        shutil.copyfile(run_dir / "results.csv", output / "results.csv")


def write_metrics(
    output: Path,
    spec: TrainingSpec,
    choice: ModelChoice,
    prepared: PreparedDataset,
    plan: RunPlan,
    feed: EventFeed,
    trained: Trained,
    export: dict[str, Any],
) -> None:
    """Write `metrics.json`: what was trained, how, and the per-epoch and final metrics."""
    import torch
    import ultralytics

    epochs = feed.epochs
    document = {
        "task": choice.task,
        "model": choice.name,
        "model_config": choice.config,
        "requested_model": choice.requested,
        "pretrained_weights": plan.weights.name if plan.weights else None,
        "classes": list(prepared.names),
        "train_images": prepared.train_images,
        "val_images": prepared.val_images,
        "epochs_requested": spec.epochs,
        "epochs_completed": trained.completed_epochs,
        "imgsz": spec.imgsz,
        "batch": plan.batch,
        "device": plan.device,
        "device_name": device_name(plan.device, torch=torch),
        "workers": plan.workers,
        "amp": plan.amp,
        "seed": spec.seed,
        "final": feed.final_metrics(),
        "per_epoch": [{"epoch": e["epoch"], **e["metrics"]} for e in epochs],
        "epoch_seconds": [round(e["epoch_seconds"], 3) for e in epochs],
        "train_seconds": round(trained.seconds, 3),
        "export": export,
        "versions": {"ultralytics": ultralytics.__version__, "torch": torch.__version__},
    }
    (output / "metrics.json").write_text(json.dumps(document, indent=2, sort_keys=True))
