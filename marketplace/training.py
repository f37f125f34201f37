"""The training job's wire-independent vocabulary, shared by the node (validation when a job is
submitted) and the provider's YOLO executor (what to train).

- `resolve_model` maps model names as requesters write them (`yolov5`, `yolov8n`, `yolo v11`,
  `YOLOv8s`, `yolo11n-cls`...) to an Ultralytics model definition (`yolov8n.yaml`) and the name
  of the matching weights file a provider may keep locally (`yolov8n.pt`). It never returns a
  `.pt` *model* name: Ultralytics downloads those from GitHub, which a provider must not do.
- `TrainingSpec.from_mapping` reads a job's parameters in any of the dialects' spellings
  (`exportFormat` / `export_format`, `numClasses` / `num_classes`, `imgsz` as text) and refuses
  bad values with `ValidationFailed` before any compute is spent.

Note for the lead: a datasets helper may ship its own model-name normaliser under
`marketplace/datasets/`; this one is named `resolve_model` / `normalize_model_name` so the two
can be reconciled into one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marketplace.errors import UnsupportedExportFormat, UnsupportedModel, ValidationFailed

DETECT = "detect"
CLASSIFY = "classify"
TASKS = (DETECT, CLASSIFY)

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

EXPORT_FORMATS = {
    "pt": "pt",
    "pytorch": "pt",
    "torch": "pt",
    "torch_script": "torchscript",
    "none": "pt",
    "": "pt",
    "onnx": "onnx",
    "torchscript": "torchscript",
}


# Formats Ultralytics knows but providers refuse: they need extra toolchains (TensorFlow,
# CoreML tools, TensorRT, OpenVINO, Paddle...) or network downloads at export time.
UNSUPPORTED_EXPORT_FORMATS = (
    "openvino",
    "engine",
    "tensorrt",
    "coreml",
    "saved_model",
    "pb",
    "tflite",
    "edgetpu",
    "tfjs",
    "paddle",
    "mnn",
    "ncnn",
    "imx",
    "rknn",
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


def normalize_export_format(value: Any) -> str:
    """`"ONNX"` -> `"onnx"`; `pt`/`pytorch`/empty -> `"pt"` (no export); others refused."""
    text = "" if value is None else str(value).strip().lower()
    if text not in EXPORT_FORMATS:
        known = text in UNSUPPORTED_EXPORT_FORMATS
        reason = "is not produced by providers" if known else "is unknown"
        raise UnsupportedExportFormat(
            f"Export format {str(value)[:32]!r} {reason}; supported: pt, torchscript, onnx",
            details={
                "field": "export_format",
                "value": str(value)[:32],
                "supported": ["pt", "torchscript", "onnx"],
                "unsupported": list(UNSUPPORTED_EXPORT_FORMATS),
            },
        )
    return EXPORT_FORMATS[text]


def parse_classes(value: Any) -> tuple[str, ...] | None:
    """Classes as a JSON array, a JSON-array string or a comma-separated string."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValidationFailed(
                    "classes is not a valid JSON array", details={"field": "classes"}
                ) from exc
        else:
            value = [part for part in (p.strip() for p in text.split(",")) if part]
    if not isinstance(value, list | tuple) or not all(isinstance(c, str) for c in value):
        raise ValidationFailed("classes must be a list of names", details={"field": "classes"})
    names = tuple(c.strip() for c in value)
    if not names or any(not c for c in names) or len(set(names)) != len(names):
        raise ValidationFailed(
            "classes must be non-empty, unique names", details={"field": "classes"}
        )
    return names


def _int_field(spec: Mapping[str, Any], keys: tuple[str, ...], default: Any, lo: int, hi: int):
    for key in keys:
        if key in spec and spec[key] is not None and spec[key] != "":
            raw = spec[key]
            break
    else:
        if default is _REQUIRED:
            raise ValidationFailed(f"{keys[0]} is required", details={"field": keys[0]})
        return default
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = int(str(raw).strip()) if not isinstance(raw, int) else raw
    except ValueError as exc:
        raise ValidationFailed(
            f"{keys[0]} must be an integer", details={"field": keys[0], "value": raw}
        ) from exc
    if not lo <= value <= hi:
        raise ValidationFailed(
            f"{keys[0]} must be between {lo} and {hi}", details={"field": keys[0], "value": raw}
        )
    return value


_REQUIRED = object()


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
        """Read a job's parameters (snake_case or camelCase); ValidationFailed on bad values."""
        if not isinstance(spec, Mapping):
            raise ValidationFailed("job parameters must be an object")
        model = spec.get("model")
        normalize_model_name(model)  # type: ignore[arg-type]  # validates
        classes = parse_classes(spec.get("classes"))
        num_classes = _int_field(spec, ("num_classes", "numClasses", "nc"), None, 1, 100_000)
        if classes is not None and num_classes is not None and len(classes) != num_classes:
            raise ValidationFailed(
                f"num_classes is {num_classes} but {len(classes)} classes are named",
                details={"field": "num_classes"},
            )
        task = spec.get("task")
        if task is not None and task not in TASKS:
            raise ValidationFailed(f"task must be one of {TASKS}", details={"field": "task"})
        pretrained = spec.get("pretrained", True)
        if not isinstance(pretrained, bool):
            raise ValidationFailed("pretrained must be a boolean", details={"field": "pretrained"})
        return cls(
            model=model,  # type: ignore[arg-type]
            epochs=_int_field(spec, ("epochs",), _REQUIRED, 1, 10_000),
            imgsz=_int_field(spec, ("imgsz", "img_size", "imgSize"), 640, 32, 8192),
            batch=_int_field(spec, ("batch", "batch_size", "batchSize"), None, 1, 4096),
            export_format=normalize_export_format(
                spec.get("export_format", spec.get("exportFormat"))
            ),
            classes=classes,
            task=task,
            pretrained=pretrained,
            seed=_int_field(spec, ("seed",), 0, 0, 2**31 - 1),
        )
