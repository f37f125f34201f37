"""Which YOLO models and export formats a job may ask for, and how requester spellings
map to Ultralytics weight files.

The node validates uploads with these functions and the provider maps the stored model
name with the same ones, so a job the node accepts is one a provider can run offline.

Accepted model spellings (case-insensitive, spaces/underscores/hyphens tolerated between
"yolo" and the version): `yolov5`, `yolov5s`, `yolov8`, `yolov8n`..`yolov8x`, `yolo v11`,
`yolov11m`, `yolo11n`..`yolo11x`, and the classification variants with a `-cls` suffix
for v8 and 11 (`yolov8n-cls`, `yolo11s-cls`). A missing size means `n` (nano).
A trailing `.pt` is accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from marketplace.datasets.errors import UnsupportedExportFormat, UnsupportedModel

SIZES = ("n", "s", "m", "l", "x")
VERSIONS = ("5", "8", "11")

_MODEL = re.compile(
    r"^yolo[\s_-]*v?[\s_-]*(?P<version>5|8|11)[\s_-]*(?P<size>[nsmlx])?"
    r"(?:[\s_-]*(?P<cls>cls))?(?:\.pt)?$"
)


@dataclass(frozen=True)
class ModelSpec:
    """A normalised model choice. `weights` is the Ultralytics asset name to load."""

    version: str  # "5", "8" or "11"
    size: str  # one of SIZES
    task: str  # "detect" or "classify"
    weights: str

    @property
    def is_classification(self) -> bool:
        return self.task == "classify"


def supported_models() -> list[str]:
    """Every canonical model name (weights without `.pt`), for error messages and docs."""
    names = [f"yolov5{s}u" for s in SIZES]
    names += [f"yolov8{s}" for s in SIZES] + [f"yolov8{s}-cls" for s in SIZES]
    names += [f"yolo11{s}" for s in SIZES] + [f"yolo11{s}-cls" for s in SIZES]
    return names


def normalize_model(name: str) -> ModelSpec:
    """Map a requester's model spelling to a `ModelSpec`; `UnsupportedModel` (422) if none.

    Examples: `"yolov5"` -> yolov5nu.pt, `"yolo v11"` -> yolo11n.pt,
    `"YOLOv8s-cls"` -> yolov8s-cls.pt.
    """
    raw = (name or "").strip().lower()
    match = _MODEL.match(raw)
    if not match or (match["version"] == "5" and match["cls"]):
        raise UnsupportedModel(
            f"Unsupported model {name[:64]!r}; use yolov5, yolov8[n|s|m|l|x], "
            "yolo11[n|s|m|l|x] or a v8/11 '-cls' classification variant",
            details={"model": name[:64], "supported": supported_models()},
        )
    version, size = match["version"], match["size"] or "n"
    task = "classify" if match["cls"] else "detect"
    suffix = "-cls" if match["cls"] else ""
    if version == "5":
        weights = f"yolov5{size}u.pt"  # Ultralytics ships v5 as the anchor-free 'u' variant
    elif version == "8":
        weights = f"yolov8{size}{suffix}.pt"
    else:
        weights = f"yolo11{size}{suffix}.pt"
    return ModelSpec(version=version, size=size, task=task, weights=weights)


# What a provider with torch + onnx installed can produce without network access.
SUPPORTED_EXPORT_FORMATS = ("pt", "torchscript", "onnx")
_EXPORT_ALIASES = {"pytorch": "pt", "torch": "pt", "torch_script": "torchscript"}
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


def normalize_export_format(fmt: str) -> str:
    """Lower-case and check an export format; `UnsupportedExportFormat` (422) lists the
    supported ones."""
    value = (fmt or "").strip().lower()
    value = _EXPORT_ALIASES.get(value, value)
    if value in SUPPORTED_EXPORT_FORMATS:
        return value
    known = value in UNSUPPORTED_EXPORT_FORMATS
    reason = "is not produced by providers" if known else "is unknown"
    raise UnsupportedExportFormat(
        f"Export format {fmt[:32]!r} {reason}; supported: {', '.join(SUPPORTED_EXPORT_FORMATS)}",
        details={
            "exportFormat": fmt[:32],
            "supported": list(SUPPORTED_EXPORT_FORMATS),
            "unsupported": list(UNSUPPORTED_EXPORT_FORMATS),
        },
    )
