"""The YOLO training executor (Ultralytics), offline by construction.

`YoloExecutor.run(job, workdir, reporter)`:
1. reads the job's parameters (`marketplace.training.TrainingSpec`) and refuses bad ones before
   any compute is spent;
2. infers the task from the dataset layout (detection: `images/` + `labels/`, split into
   `train`/`val` subfolders or flat, or Roboflow's `train/images` + `train/labels`;
   classification: class folders under `train/` and `val/`) and builds a symlinked view of it
   under the work directory, with a `data.yaml` holding absolute paths, so Ultralytics' label
   caches land in the work directory and the CID-verified dataset is never written to;
3. maps the requested model name to an Ultralytics `.yaml` definition and, when the provider
   keeps `<name>.pt` in its weights directory (`DCM_WEIGHTS_DIR`), starts from those weights;
   nothing is ever downloaded;
4. trains on every visible CUDA GPU (else the CPU) in a background thread while the calling
   thread forwards per-epoch progress and log lines to the reporter and polls for cancellation;
   a cancel stops training at the next epoch boundary and raises `ExecutionCancelled`;
5. exports the best weights to the requested format and writes one output directory with fixed
   names: `weights/best.pt`, `weights/last.pt`, `weights/best.onnx` or `weights/best.torchscript`,
   `results.csv`, `metrics.json`, `train.log`.

Offline settings (OFFLINE.md): Ultralytics reads `YOLO_CONFIG_DIR`, `YOLO_AUTOINSTALL` and
`YOLO_OFFLINE` into module constants when it is first imported, so the executor sets them just
before importing it and restores the caller's values when `run()` returns. While `run()` is
executing they are visible to the whole process (os.environ is process-wide), and the constants
Ultralytics captured at import stay for the life of the process: a provider process should let
this executor be the one that imports Ultralytics. If Ultralytics was imported earlier, the
executor still turns auto-install and online checks off on the imported modules.

Multi-GPU runs go through Ultralytics' DDP launcher, which pickles the training callbacks into a
child process (with `cloudpickle`, part of the `[train]` extra; `worker` must be importable
there, as it is once the package is installed). The callbacks therefore talk to the executor
only through two files in the work directory (an events log and a cancel flag), never through
the reporter, and only rank 0 writes events.

One YOLO run at a time per process: Ultralytics' logger and settings and os.environ are process
globals, so concurrent `run()` calls queue on a lock. A provider that trains several jobs at
once should run them in separate processes. Reporter calls happen only on the calling thread;
a reporter that raises is logged to `train.log` and training goes on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from marketplace.errors import ValidationFailed
from marketplace.training import CLASSIFY, DETECT, ModelChoice, TrainingSpec, resolve_model
from worker.executors.base import ExecutionCancelled, ExecutionResult, JobSpec, Reporter

IMAGE_SUFFIXES = frozenset(
    {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"}
)
VAL_SPLIT_NAMES = ("val", "valid", "validation", "test")
TRAIN_PERCENT_SPAN = 95.0  # epochs fill 0-95 %; export and packaging the rest
POLL_SECONDS = 0.2
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_IMPORT_LOCK = threading.Lock()
# One training at a time per process: Ultralytics' logger, settings and os.environ are global.
_RUN_LOCK = threading.Lock()


def default_config_dir() -> Path:
    """Where Ultralytics keeps its settings and fonts for this provider (`DCM_YOLO_CONFIG_DIR`)."""
    if env := os.environ.get("DCM_YOLO_CONFIG_DIR"):
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "dcm" / "ultralytics"


@contextlib.contextmanager
def offline_environment(config_dir: Path) -> Iterator[None]:
    """Set Ultralytics' offline variables for the duration of the block, then restore them."""
    wanted = {
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "0",
        "YOLO_CONFIG_DIR": str(config_dir),
    }
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def import_ultralytics(config_dir: Path) -> Any:
    """Import Ultralytics offline (call inside `offline_environment`); return the module."""
    with _IMPORT_LOCK:
        import ultralytics
        import ultralytics.utils as uutils
        import ultralytics.utils.checks as uchecks

        # Effective even when someone imported Ultralytics before us with other settings.
        uutils.AUTOINSTALL = False
        uchecks.AUTOINSTALL = False
        uutils.ONLINE = False
        uchecks.ONLINE = False
        uutils.SETTINGS.update(sync=False)
        _seed_fonts(Path(uutils.USER_CONFIG_DIR))
        return ultralytics


def _seed_fonts(user_config_dir: Path) -> None:
    """Ultralytics downloads Arial for its plots; give it matplotlib's DejaVuSans instead."""
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    user_config_dir.mkdir(parents=True, exist_ok=True)
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = user_config_dir / name
        if not target.exists() and source.exists():
            shutil.copyfile(source, target)


# --------------------------------------------------------------------------- dataset layout


@dataclass(frozen=True)
class PreparedDataset:
    """The dataset as Ultralytics will read it."""

    task: str
    data: Path  # data.yaml (detection) or the dataset directory (classification)
    names: tuple[str, ...]
    train_images: int
    val_images: int


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _images_under(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and _is_image(p) and "__MACOSX" not in p.parts
    )


def _first_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (root / name).is_dir():
            return root / name
    return None


def _split(items: list[Path]) -> tuple[list[Path], list[Path]]:
    """Deterministic 80/20 split of a sorted list (every fifth to validation, at least one)."""
    val = [p for i, p in enumerate(items) if i % 5 == 4] or items[-1:]
    chosen = set(val)
    return [p for p in items if p not in chosen], val


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target.resolve(), target_is_directory=target.is_dir())


def _dataset_root(dataset_dir: Path) -> Path:
    """Descend through a single wrapping folder (a zip of `mydata/...`)."""
    root = dataset_dir
    for _ in range(3):
        if _layout(root) is not None:
            return root
        children = [c for c in root.iterdir() if not c.name.startswith((".", "__MACOSX"))]
        if len(children) == 1 and children[0].is_dir():
            root = children[0]
        else:
            break
    return root


def _layout(root: Path) -> str | None:
    if (root / "images").is_dir() and (root / "labels").is_dir():
        return "detect"
    if (root / "train" / "images").is_dir() and (root / "train" / "labels").is_dir():
        return "detect-roboflow"
    train = root / "train"
    if train.is_dir() and any(
        c.is_dir() and any(_is_image(f) for f in c.iterdir()) for c in train.iterdir()
    ):
        return "classify"
    return None


LAYOUT_HELP = (
    "expected detection (images/ and labels/, each flat or with train/ and val/ subfolders; "
    "or train/images + train/labels) or classification (train/<class>/*.jpg and val/<class>/)"
)


def prepare_dataset(dataset_dir: Path, view_dir: Path, spec: TrainingSpec) -> PreparedDataset:
    """Build the linked view of the dataset Ultralytics reads; ValidationFailed if unusable."""
    if not dataset_dir.is_dir():
        raise ValidationFailed(f"dataset directory {dataset_dir} does not exist")
    root = _dataset_root(dataset_dir)
    layout = _layout(root)
    if layout is None:
        raise ValidationFailed(f"unrecognised dataset layout: {LAYOUT_HELP}")
    task = CLASSIFY if layout == "classify" else DETECT
    if spec.task and spec.task != task:
        raise ValidationFailed(f"the job asks for {spec.task} but the dataset layout is {task}")
    if view_dir.exists():
        shutil.rmtree(view_dir)
    view_dir.mkdir(parents=True)
    if task == CLASSIFY:
        return _prepare_classify(root, view_dir, spec)
    return _prepare_detect(root, view_dir, spec, roboflow=layout == "detect-roboflow")


def _prepare_detect(
    root: Path, view: Path, spec: TrainingSpec, *, roboflow: bool
) -> PreparedDataset:
    if roboflow:
        splits = {"train": (root / "train" / "images", root / "train" / "labels")}
        val_root = _first_dir(root, VAL_SPLIT_NAMES)
        if val_root and (val_root / "images").is_dir():
            splits["val"] = (val_root / "images", val_root / "labels")
    else:
        images, labels = root / "images", root / "labels"
        train_dir = _first_dir(images, ("train",))
        splits = {}
        if train_dir is not None:
            splits["train"] = (train_dir, labels / "train")
            val_dir = _first_dir(images, VAL_SPLIT_NAMES)
            if val_dir is not None:
                splits["val"] = (val_dir, labels / val_dir.name)
        else:
            splits["flat"] = (images, labels)

    # Per-file links into real directories: Ultralytics resolves the split directories it is
    # given, so directory links would send its label caches into the dataset itself.
    plan: dict[str, tuple[Path, Path, list[Path]]] = {}
    if "flat" in splits or "val" not in splits:
        # No validation split given: split the images deterministically.
        src_images, src_labels = splits.get("flat") or splits["train"]
        files = _images_under(src_images)
        if len(files) < 2:
            raise ValidationFailed("a detection dataset needs at least 2 images")
        train_files, val_files = _split(files)
        plan["train"] = (src_images, src_labels, train_files)
        plan["val"] = (src_images, src_labels, val_files)
    else:
        for split in ("train", "val"):
            src_images, src_labels = splits[split]
            plan[split] = (src_images, src_labels, _images_under(src_images))
    counts: dict[str, int] = {}
    label_files: list[Path] = []
    for split, (src_images, src_labels, chosen) in plan.items():
        counts[split] = len(chosen)
        (view / "labels" / split).mkdir(parents=True, exist_ok=True)
        for image in chosen:
            rel = image.relative_to(src_images)
            _link(image, view / "images" / split / rel)
            label = (src_labels / rel).with_suffix(".txt")
            if label.is_file():
                _link(label, (view / "labels" / split / rel).with_suffix(".txt"))
                label_files.append(label)
    if counts["train"] == 0 or counts["val"] == 0:
        raise ValidationFailed("the dataset has no training or no validation images")

    max_id = _max_label_id(label_files)
    if max_id < 0:
        raise ValidationFailed("no labels found: a detection dataset needs labels/*.txt files")
    names = (
        spec.classes or _names_from_dataset(root) or tuple(f"class_{i}" for i in range(max_id + 1))
    )
    if max_id >= len(names):
        raise ValidationFailed(
            f"labels use class id {max_id} but only {len(names)} classes are named",
            details={"field": "classes"},
        )
    data_yaml = view / "data.yaml"
    base = view.resolve()
    # JSON is valid YAML. Absolute paths into the view (not the link targets): Ultralytics
    # derives each label path from its image path.
    document = {
        "path": str(base),
        "train": str(base / "images" / "train"),
        "val": str(base / "images" / "val"),
        "nc": len(names),
        "names": list(names),
    }
    data_yaml.write_text(json.dumps(document, indent=2))
    return PreparedDataset(DETECT, data_yaml, tuple(names), counts["train"], counts["val"])


def _max_label_id(label_files: list[Path]) -> int:
    """The highest class id in the labels (-1 if none); ValidationFailed on a malformed line."""
    max_id = -1
    for path in label_files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            try:
                class_id = int(fields[0])
                coords = [float(v) for v in fields[1:]]
            except ValueError:
                class_id, coords = -1, []
            if class_id < 0 or len(coords) < 4:
                raise ValidationFailed(
                    f"malformed label {path.name}:{number}: {line[:80]!r}",
                    details={"file": path.name, "line": number},
                )
            max_id = max(max_id, class_id)
    return max_id


def _names_from_dataset(root: Path) -> tuple[str, ...] | None:
    for candidate in ("data.yaml", "dataset.yaml", "data.yml"):
        path = root / candidate
        if path.is_file():
            import yaml  # PyYAML comes with Ultralytics

            with contextlib.suppress(yaml.YAMLError, AttributeError, TypeError):
                names = yaml.safe_load(path.read_text()).get("names")
                if isinstance(names, dict):
                    names = [names[k] for k in sorted(names)]
                if isinstance(names, list) and names:
                    return tuple(str(n) for n in names)
    for listing in (root / "classes.txt", root / "labels" / "classes.txt"):
        if listing.is_file():
            listed = [n.strip() for n in listing.read_text().splitlines() if n.strip()]
            if listed:
                return tuple(listed)
    return None


def _prepare_classify(root: Path, view: Path, spec: TrainingSpec) -> PreparedDataset:
    train = root / "train"
    classes = sorted(c.name for c in train.iterdir() if c.is_dir() and not c.name.startswith("."))
    if len(classes) < 2:
        raise ValidationFailed("a classification dataset needs at least 2 class folders in train/")
    if spec.classes and set(spec.classes) != set(classes):
        raise ValidationFailed(
            f"classes {list(spec.classes)} do not match the dataset's folders {classes}",
            details={"field": "classes"},
        )
    val = _first_dir(root, VAL_SPLIT_NAMES)
    counts = {"train": 0, "val": 0}
    for name in classes:
        files = _images_under(train / name)
        if val is not None:
            split_files = {"train": (train / name, files)}
            split_files["val"] = (
                val / name,
                _images_under(val / name) if (val / name).is_dir() else [],
            )
        else:
            if len(files) < 2:
                raise ValidationFailed(f"class {name!r} needs at least 2 images to split off val")
            train_files, val_files = _split(files)
            split_files = {"train": (train / name, train_files), "val": (train / name, val_files)}
        for split, (source, chosen) in split_files.items():
            counts[split] += len(chosen)
            (view / split / name).mkdir(parents=True, exist_ok=True)
            for image in chosen:
                _link(image, view / split / name / image.relative_to(source))
    if counts["train"] == 0 or counts["val"] == 0:
        raise ValidationFailed("the dataset has no training or no validation images")
    return PreparedDataset(CLASSIFY, view, tuple(classes), counts["train"], counts["val"])


# --------------------------------------------------------------------------- callbacks


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


class _LogCapture(logging.Handler):
    """Collects Ultralytics' log records (from the training thread) for the calling thread."""

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


# --------------------------------------------------------------------------- executor


def visible_cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def choose_device(override: str | None = None) -> str:
    """`"0,1,..."` for all visible CUDA GPUs, else `"cpu"` (or the override)."""
    if override:
        return override
    count = visible_cuda_devices()
    return ",".join(str(i) for i in range(count)) if count else "cpu"


def choose_batch(requested: int | None, train_images: int, device: str) -> int:
    """The requested batch, else 16 per GPU (16 on CPU); never above the training set size;
    a multiple of the GPU count for multi-GPU runs."""
    gpus = 0 if device == "cpu" else len(device.split(","))
    batch = requested or 16 * max(gpus, 1)
    batch = max(1, min(batch, train_images))
    if gpus > 1:
        batch = max(gpus, batch - batch % gpus)
    return batch


def choose_workers(cores: int | None = None) -> int:
    """Dataloader workers: none on two cores or fewer (they only compete with training)."""
    from worker.hardware import cpu_cores

    cores = cores or cpu_cores()
    return 0 if cores <= 2 else min(8, cores - 1)


class YoloExecutor:
    """Trains an Ultralytics YOLO model for a `JobSpec` (see the module docstring)."""

    job_types: ClassVar[frozenset[str]] = frozenset(
        {"yolo_training", "image_processing", "model_training"}
    )
    result_type = "yolo_model"

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

    # The daemon calls this; everything else is a helper of it.
    def run(self, job: JobSpec, workdir: Path, report: Reporter) -> ExecutionResult:
        spec = TrainingSpec.from_mapping(job.spec)
        if job.dataset_dir is None:
            raise ValidationFailed("a training job needs a dataset")
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        prepared = prepare_dataset(Path(job.dataset_dir), workdir / "data", spec)
        choice = resolve_model(spec.model, prepared.task)
        if report.should_cancel():
            raise ExecutionCancelled("cancelled before training", completed_epochs=0)

        output = workdir / "output"
        if output.exists():
            shutil.rmtree(output)
        (output / "weights").mkdir(parents=True)
        log_file = (output / "train.log").open("w", encoding="utf-8")
        capture = _LogCapture()

        def log(line: str, level: str = "info") -> None:
            log_file.write(line + "\n")
            try:
                report.log(line, level)
            except Exception as exc:  # a reporter failure must not orphan the training thread
                log_file.write(f"dcm: reporter.log failed: {exc!r}\n")

        def drain_logs() -> None:
            while True:
                try:
                    level, line = capture.lines.get_nowait()
                except queue.Empty:
                    return
                log(line, level)

        try:
            with _RUN_LOCK, offline_environment(self.config_dir):
                import_ultralytics(self.config_dir)
                ulogger = logging.getLogger("ultralytics")
                ulogger.addHandler(capture)
                try:
                    return self._train_and_package(
                        spec, choice, prepared, workdir, output, report, log, drain_logs
                    )
                finally:
                    ulogger.removeHandler(capture)
                    drain_logs()
        finally:
            log_file.close()

    def _train_and_package(
        self,
        spec: TrainingSpec,
        choice: ModelChoice,
        prepared: PreparedDataset,
        workdir: Path,
        output: Path,
        report: Reporter,
        log: Any,
        drain_logs: Any,
    ) -> ExecutionResult:
        import torch
        import ultralytics
        from ultralytics import YOLO

        device = choose_device(self.device)
        batch = choose_batch(spec.batch, prepared.train_images, device)
        workers = choose_workers()
        amp = device != "cpu"
        weights = self._local_weights(choice) if spec.pretrained else None

        model = YOLO(choice.config, task=choice.task)
        if weights is not None:
            model.load(str(weights))
        log(
            f"dcm: {choice.task} {choice.name} ({choice.config}"
            f"{', weights ' + weights.name if weights else ', from scratch'}) on {device}: "
            f"{prepared.train_images} train / {prepared.val_images} val images, "
            f"{len(prepared.names)} classes, epochs={spec.epochs} imgsz={spec.imgsz} "
            f"batch={batch} workers={workers} amp={amp}"
        )

        events_path = workdir / "events.jsonl"
        cancel_path = workdir / "cancel.flag"
        for stale in (events_path, cancel_path):
            stale.unlink(missing_ok=True)
        hook = TrainingHook(events_path, cancel_path)
        model.add_callback("on_train_start", hook.on_train_start)
        model.add_callback("on_fit_epoch_end", hook.on_fit_epoch_end)
        run_dir = workdir / "run"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        train_args = {
            "data": str(prepared.data),
            "epochs": spec.epochs,
            "imgsz": spec.imgsz,
            "batch": batch,
            "device": device,
            "workers": workers,
            "amp": amp,
            "project": str(workdir),
            "name": "run",
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
        events: list[dict[str, Any]] = []
        offset = 0
        cancel_requested = False
        try:
            while True:
                alive = thread.is_alive()
                drain_logs()
                offset = self._pump_events(events_path, offset, events, report, log)
                if not cancel_requested and report.should_cancel():
                    cancel_requested = True
                    cancel_path.touch()
                    log("dcm: cancel requested, stopping at the end of this epoch", "warning")
                if not alive:
                    break
                thread.join(POLL_SECONDS)
        except BaseException:
            cancel_path.touch()  # e.g. KeyboardInterrupt: let the thread stop at the epoch's end
            raise
        train_seconds = time.monotonic() - started

        epoch_events = [e for e in events if e["kind"] == "epoch"]
        completed = len(epoch_events)
        if failure:
            raise failure[0]
        if cancel_requested:
            raise ExecutionCancelled(
                f"cancelled after {completed} of {spec.epochs} epochs", completed_epochs=completed
            )

        weights_dir = run_dir / "weights"
        for name in ("best.pt", "last.pt"):
            if not (weights_dir / name).is_file():
                raise RuntimeError(f"training produced no {name}")
            shutil.copyfile(weights_dir / name, output / "weights" / name)
        if (run_dir / "results.csv").is_file():
            shutil.copyfile(run_dir / "results.csv", output / "results.csv")

        export_info: dict[str, Any] = {"format": spec.export_format, "file": None, "seconds": 0.0}
        if spec.export_format != "pt":
            _progress(report, log, TRAIN_PERCENT_SPAN + 2, f"Exporting to {spec.export_format}")
            t0 = time.monotonic()
            exported = YOLO(str(output / "weights" / "best.pt")).export(
                format=spec.export_format,
                imgsz=spec.imgsz,
                device=device.split(",")[0],
            )
            export_info["seconds"] = round(time.monotonic() - t0, 3)
            exported_path = Path(str(exported))
            if not exported_path.is_file():
                raise RuntimeError(f"export to {spec.export_format} produced no file")
            export_info["file"] = exported_path.relative_to(output).as_posix()
            log(f"dcm: exported {export_info['file']} in {export_info['seconds']} s")
            if report.should_cancel():
                raise ExecutionCancelled("cancelled during export", completed_epochs=completed)

        final_event = next((e for e in reversed(events) if e["kind"] == "final"), None)
        final = (final_event or (epoch_events[-1] if epoch_events else {})).get("metrics", {})
        metrics_doc = {
            "task": choice.task,
            "model": choice.name,
            "model_config": choice.config,
            "requested_model": choice.requested,
            "pretrained_weights": weights.name if weights else None,
            "classes": list(prepared.names),
            "train_images": prepared.train_images,
            "val_images": prepared.val_images,
            "epochs_requested": spec.epochs,
            "epochs_completed": completed,
            "imgsz": spec.imgsz,
            "batch": batch,
            "device": device,
            "device_name": _device_name(torch, device),
            "workers": workers,
            "amp": amp,
            "seed": spec.seed,
            "final": final,
            "per_epoch": [{"epoch": e["epoch"], **e["metrics"]} for e in epoch_events],
            "epoch_seconds": [round(e["epoch_seconds"], 3) for e in epoch_events],
            "train_seconds": round(train_seconds, 3),
            "export": export_info,
            "versions": {"ultralytics": ultralytics.__version__, "torch": torch.__version__},
        }
        (output / "metrics.json").write_text(json.dumps(metrics_doc, indent=2, sort_keys=True))
        drain_logs()
        log(f"dcm: finished {completed} epochs in {train_seconds:.1f} s")
        _progress(report, log, 100.0, "Finished", final)
        artifacts = tuple(
            sorted(p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file())
        )
        result_metrics = {
            **final,
            "epochs_completed": completed,
            "train_seconds": round(train_seconds, 3),
            "device": device,
        }
        return ExecutionResult(output, result_metrics, self.result_type, artifacts)

    def _pump_events(
        self,
        events_path: Path,
        offset: int,
        events: list[dict[str, Any]],
        report: Reporter,
        log: Any,
    ) -> int:
        if not events_path.exists():
            return offset
        with events_path.open("rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # leave a half-written line for next time
        for raw in complete.splitlines():
            event = json.loads(raw)
            events.append(event)
            metrics = event["metrics"]
            summary = " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
            if event["kind"] == "final":
                log(f"Final validation (best.pt): {summary}")
                continue
            message = f"Epoch {event['epoch']}/{event['epochs']}"
            log(f"{message}: {summary} ({event['epoch_seconds']:.2f} s)")
            percent = round(TRAIN_PERCENT_SPAN * event["epoch"] / max(event["epochs"], 1), 1)
            _progress(report, log, percent, message, metrics)
        return offset + len(complete)

    def _local_weights(self, choice: ModelChoice) -> Path | None:
        if self.weights_dir is None:
            return None
        path = self.weights_dir / choice.weights_file
        return path if path.is_file() else None


def _progress(
    report: Reporter,
    log: Any,
    percent: float,
    message: str,
    metrics: Mapping[str, float] | None = None,
) -> None:
    try:
        report.progress(percent, message, metrics)
    except Exception as exc:  # keep training; the next report may get through
        log(f"dcm: reporter.progress failed: {exc!r}", "warning")


def _device_name(torch: Any, device: str) -> str:
    if device == "cpu":
        return "cpu"
    with contextlib.suppress(Exception):
        return ", ".join(torch.cuda.get_device_name(int(i)) for i in device.split(","))
    return device
