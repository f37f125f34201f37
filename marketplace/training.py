"""The training job's wire-independent vocabulary, shared by the node (validation when a job is
submitted) and the provider's YOLO executor (what to train).

- `resolve_model` maps model names as requesters write them (`yolov5`, `yolov8n`, `yolo v11`,
  `YOLOv8s`, `yolo11n-cls`...) to an Ultralytics model definition (`yolov8n.yaml`) and the name
  of the matching weights file a provider may keep locally (`yolov8n.pt`). It never returns a
  `.pt` *model* name: Ultralytics downloads those from GitHub, which a provider must not do.
- `TrainingSpec.from_mapping` is the one parser of a job's training parameters: the node runs
  it on seed 000's form fields at upload, the provider on the stored spec before any compute
  is spent. It reads any of the dialects' spellings (`exportFormat` / `export_format`,
  `numClasses` / `num_classes`, numbers as text) and refuses bad values with `InvalidField`
  (422 `INVALID_FIELD`, `details.field` the snake_case name), `UnsupportedModel` or
  `UnsupportedExportFormat` (the formats are `marketplace.exports`' one list).

Limits (one set, for both sides):
- `epochs` 1..10000;
- `imgsz` 32..4096 and a multiple of 32: YOLO's largest stride is 32 (Ultralytics would
  silently round another size), and 4096 is already past what one GPU trains at a useful
  batch; 8192 only ever reached the provider, never through the node;
- `num_classes` 1..10000 and equal to the number of `classes`: ten times the largest
  detection vocabularies in use (LVIS 1203, Open Images 601), and what the node always
  enforced at upload, the only place a training job gets its dataset;
- `classes`: see `parse_classes`; `batch` 1..4096; `seed` 0..2**31-1.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from marketplace.errors import InvalidField, UnsupportedModel, ValidationFailed
from marketplace.exports import normalize_export_format
from marketplace.jsondepth import loads_bounded

DETECT: Final = "detect"
CLASSIFY: Final = "classify"
TASKS = (DETECT, CLASSIFY)

EPOCHS_RANGE = (1, 10_000)
IMGSZ_RANGE = (32, 4096)
IMGSZ_STRIDE = 32
NUM_CLASSES_RANGE = (1, 10_000)
BATCH_RANGE = (1, 4096)
SEED_RANGE = (0, 2**31 - 1)
MAX_CLASS_NAME = 128

_INT = re.compile(r"^[+]?\d{1,12}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Ultralytics family -> (file stem prefix, scales, default scale). Versions 11+ drop the "v".
_FAMILIES: dict[int, tuple[str, tuple[str, ...], str]] = {
    3: ("yolov3", ("",), ""),
    5: ("yolov5", ("n", "s", "m", "l", "x"), "n"),
    6: ("yolov6", ("n", "s", "m", "l", "x"), "n"),
    8: ("yolov8", ("n", "s", "m", "l", "x"), "n"),
    9: ("yolov9", ("t", "s", "m", "c", "e"), "t"),
    10: ("yolov10", ("n", "s", "m", "b", "l", "x"), "n"),
    11: ("yolo11", ("n", "s", "m", "l", "x"), "n"),
    12: ("yolo12", ("n", "s", "m", "l", "x"), "n"),
    26: ("yolo26", ("n", "s", "m", "l", "x"), "n"),
}
# Families that ship a classification head definition (`*-cls.yaml`) in Ultralytics.
_CLASSIFY_FAMILIES = frozenset({8, 11, 12, 26})
_V3_VARIANTS = ("", "tiny", "spp")
_TASK_SUFFIXES = {"cls": CLASSIFY, "classify": CLASSIFY, "det": DETECT, "detect": DETECT}
_UNSUPPORTED_TASKS = ("seg", "pose", "obb", "world")

_NAME = re.compile(
    r"^yolo-?v?(?P<version>\d{1,2})(?P<scale>[a-z]?)u?"
    r"(?:-(?P<variant>tiny|spp))?(?:-(?P<task>[a-z]+))?$"
)

SUPPORTED_MODELS_HINT = (
    "yolov3 (-tiny, -spp), yolov5/yolov6/yolov8/yolo11/yolo12/yolo26 with scale n|s|m|l|x, "
    "yolov9 t|s|m|c|e, yolov10 n|s|m|b|l|x; classification: yolov8/yolo11/yolo12/yolo26"
)


@dataclass(frozen=True)
class ModelChoice:
    """An Ultralytics model definition resolved from a requester's model name."""

    requested: str
    name: str  # canonical, e.g. "yolov8n", "yolo11n", "yolov3-tiny"
    task: str  # "detect" or "classify"
    config: str  # Ultralytics model definition, e.g. "yolov8n.yaml", "yolo11n-cls.yaml"
    weights_file: str  # local pretrained weights a provider may keep, e.g. "yolov8n.pt"


def _bad_model(requested: str, why: str) -> ValidationFailed:
    return UnsupportedModel(
        f"Unsupported model {requested!r}: {why}. Supported: {SUPPORTED_MODELS_HINT}",
        details={"field": "model", "value": requested},
    )


def _parse_name(requested: str) -> tuple[int, str, str, str | None]:
    if not isinstance(requested, str) or not requested.strip():
        raise UnsupportedModel("model must be a non-empty string", details={"field": "model"})
    text = requested.strip().lower()
    for suffix in (".pt", ".yaml", ".yml"):
        if text.endswith(suffix):
            text = text[: -len(suffix)]
    text = re.sub(r"[\s_]+", "", text)
    match = _NAME.match(text)
    if not match:
        raise _bad_model(requested, "not a YOLO model name")
    version = int(match["version"])
    if version not in _FAMILIES:
        raise _bad_model(requested, f"YOLO version {version} is not available in Ultralytics")
    prefix, scales, default_scale = _FAMILIES[version]
    scale = match["scale"] or default_scale
    variant = match["variant"] or ""
    if version == 3:
        if match["scale"]:
            raise _bad_model(requested, "yolov3 has no size scales (use yolov3, -tiny or -spp)")
        scale = ""
    elif variant:
        raise _bad_model(requested, f"-{variant} exists only for yolov3")
    if scale not in scales:
        raise _bad_model(requested, f"{prefix} has no scale {scale!r} (one of {', '.join(scales)})")
    task_suffix = match["task"]
    if task_suffix in _UNSUPPORTED_TASKS:
        raise _bad_model(requested, f"task {task_suffix!r} is not supported (detect, classify)")
    if task_suffix is not None and task_suffix not in _TASK_SUFFIXES:
        raise _bad_model(requested, f"unknown suffix {task_suffix!r}")
    stem = f"{prefix}{scale}" + (f"-{variant}" if variant else "")
    return version, stem, prefix, _TASK_SUFFIXES.get(task_suffix) if task_suffix else None


def normalize_model_name(requested: str) -> str:
    """The canonical name of a requested model (`"YOLO v11"` -> `"yolo11n"`).

    Raises:
        ValidationFailed: not a model Ultralytics defines.
    """
    _, stem, _, task = _parse_name(requested)
    return f"{stem}-cls" if task == CLASSIFY else stem


def resolve_model(requested: str, task: str | None = None) -> ModelChoice:
    """Map a requester's model name to the Ultralytics definition for `task`.

    Args:
        requested: the model name as written (`yolov5`, `yolo v11`, `YOLOv8s`, `yolo11n-cls`).
        task: `detect` or `classify` (from the dataset layout); None takes the name's own
            suffix (`-cls`) or detection.

    Raises:
        ValidationFailed: unknown name, a scale the family lacks, an unsupported task, or a
            family without a classification head asked to classify.
    """
    version, stem, prefix, name_task = _parse_name(requested)
    if task is not None and task not in TASKS:
        raise ValidationFailed(f"task must be one of {TASKS}", details={"field": "task"})
    if name_task and task and name_task != task:
        raise _bad_model(requested, f"the name asks for {name_task} but the dataset is {task}")
    effective = task or name_task or DETECT
    if effective == CLASSIFY:
        if version not in _CLASSIFY_FAMILIES:
            raise _bad_model(requested, f"{prefix} has no classification model in Ultralytics")
        stem = f"{stem}-cls"
    return ModelChoice(
        requested=requested,
        name=stem,
        task=effective,
        config=f"{stem}.yaml",
        weights_file=f"{stem}.pt",
    )


# `classes` as JSON is a flat list of names: anything nested deeper is refused unparsed.
CLASSES_MAX_DEPTH = 2


def parse_classes(value: Any) -> tuple[str, ...] | None:
    """Class names from a JSON array, a JSON-array string or a comma-separated string;
    None when absent. Names are trimmed, non-empty, unique, at most 128 characters, without
    `/`, `\\`, `,` or control characters (they become folder names for classification and
    are rendered joined by ", ")."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = loads_bounded(text, max_depth=CLASSES_MAX_DEPTH)
            except ValueError as exc:  # not JSON, or nested deeper than a list of names can be
                raise InvalidField(
                    "classes is not a valid JSON array", details={"field": "classes"}
                ) from exc
            if not isinstance(value, list):
                raise InvalidField(
                    "classes must be a JSON array of strings", details={"field": "classes"}
                )
        else:
            value = text.split(",") if text else []
    if not isinstance(value, list | tuple) or not all(isinstance(c, str) for c in value):
        raise InvalidField("classes must be a list of names", details={"field": "classes"})
    names = tuple(c.strip() for c in value)
    if not names:
        raise InvalidField("classes must name at least one class", details={"field": "classes"})
    for name in names:
        if (
            not name
            or len(name) > MAX_CLASS_NAME
            or name in (".", "..")
            or any(ch in name for ch in "/\\,")
            or _CONTROL.search(name)
        ):
            raise InvalidField(
                "class names must be 1-128 characters without '/', '\\\\', ',' or control "
                "characters",
                details={"field": "classes", "value": name[:MAX_CLASS_NAME]},
            )
    if len(set(names)) != len(names):
        raise InvalidField("classes contains duplicate names", details={"field": "classes"})
    return names


_REQUIRED = object()


def _int_field(
    spec: Mapping[str, Any],
    keys: tuple[str, ...],
    default: Any,
    limits: tuple[int, int],
    stride: int = 1,
) -> Any:
    """The first of `keys` present in `spec`, as an int within `limits` and a multiple of
    `stride`. Errors name the key as the caller spelled it; `details.field` is `keys[0]`."""
    found = next((k for k in keys if spec.get(k) is not None and spec.get(k) != ""), None)
    if found is None:
        if default is _REQUIRED:
            raise InvalidField(f"{keys[0]} is required", details={"field": keys[0]})
        return default
    raw = spec[found]
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and _INT.match(raw.strip()):
        value = int(raw.strip())
    else:
        raise InvalidField(
            f"{found} must be an integer", details={"field": keys[0], "value": str(raw)[:32]}
        )
    lo, hi = limits
    if not lo <= value <= hi:
        raise InvalidField(
            f"{found} must be between {lo} and {hi}",
            details={"field": keys[0], "value": value, "min": lo, "max": hi},
        )
    if value % stride:
        raise InvalidField(
            f"{found} must be a multiple of {stride}", details={"field": keys[0], "value": value}
        )
    return value


@dataclass(frozen=True)
class TrainingSpec:
    """What a requester asked to train; `batch=None` lets the executor size it."""

    model: str
    epochs: int
    imgsz: int = 640
    batch: int | None = None
    export_format: str = "pt"
    classes: tuple[str, ...] | None = None
    task: str | None = None  # None: inferred from the dataset layout
    pretrained: bool = True  # use the provider's local weights for the model when present
    seed: int = 0

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> TrainingSpec:
        """Read a job's parameters (snake_case or camelCase, numbers or their text);
        `InvalidField` (or `UnsupportedModel`/`UnsupportedExportFormat`) on bad values,
        checked in the order model, export format, epochs, image size, classes."""
        if not isinstance(spec, Mapping):
            raise ValidationFailed("job parameters must be an object")
        model = spec.get("model")
        normalize_model_name(model)  # type: ignore[arg-type]  # validates
        export_format = normalize_export_format(spec.get("export_format", spec.get("exportFormat")))
        epochs = _int_field(spec, ("epochs",), _REQUIRED, EPOCHS_RANGE)
        imgsz = _int_field(spec, ("imgsz", "img_size", "imgSize"), 640, IMGSZ_RANGE, IMGSZ_STRIDE)
        num_classes = _int_field(spec, ("num_classes", "numClasses", "nc"), None, NUM_CLASSES_RANGE)
        classes = parse_classes(spec.get("classes"))
        if classes is not None and num_classes is not None and len(classes) != num_classes:
            key = next(k for k in ("num_classes", "numClasses", "nc") if spec.get(k) is not None)
            raise InvalidField(
                f"{key} is {num_classes} but classes names {len(classes)}",
                details={
                    "field": "num_classes",
                    "num_classes": num_classes,
                    "classes": len(classes),
                },
            )
        task = spec.get("task")
        if task is not None and task not in TASKS:
            raise InvalidField(f"task must be one of {TASKS}", details={"field": "task"})
        pretrained = spec.get("pretrained", True)
        if not isinstance(pretrained, bool):
            raise InvalidField("pretrained must be a boolean", details={"field": "pretrained"})
        return cls(
            model=model,  # type: ignore[arg-type]
            epochs=epochs,
            imgsz=imgsz,
            batch=_int_field(spec, ("batch", "batch_size", "batchSize"), None, BATCH_RANGE),
            export_format=export_format,
            classes=classes,
            task=task,
            pretrained=pretrained,
            seed=_int_field(spec, ("seed",), 0, SEED_RANGE),
        )
