"""Export formats, the one rule for every side: what a job may ask for (the node at upload,
the provider before it trains), what a provider can make (it advertises the formats a tiny
trial export succeeded for, `capabilities["export_formats"]`) and who may take a job (the
node's claim: `can_make`).

Every format Ultralytics (8.4) names is accepted, by its `format=` argument or one of the
aliases Ultralytics itself maps (`tensorrt` -> `engine`, `mlpackage` -> `coreml`...). The
job keeps the canonical name. Ultralytics 8.4.83 replaced `tflite` and `tfjs` with the
unified Google LiteRT export, so a job asking for either (seed 000's example asks for
`tfjs`) is a `litert` job and gets a `.tflite` model.

Each format names the `pyproject.toml` extra that installs what it needs (`train` has
PyTorch, TorchScript and ONNX; `export-<name>` the others), or none where no package
registry has it for Linux x86_64 (`note` says why). A provider installs the extras it
wants; which formats it then really makes is what its trial export finds, never this table.
A provider that advertises nothing (an older daemon) makes the `train` extra's formats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from marketplace.errors import UnsupportedExportFormat


@dataclass(frozen=True)
class ExportFormat:
    name: str  # Ultralytics' `format=` argument
    title: str
    suffix: str  # what Ultralytics writes beside best.pt (a file or a `_..._model` folder)
    extra: str | None  # the pyproject extra that installs it; None: no registry has it
    modules: tuple[str, ...] = ()  # importable before a trial export is worth trying
    needs_gpu: bool = False
    note: str = ""


_VENDOR = "a vendor SDK or compiler not on PyPI for Linux x86_64"

FORMATS: Final[dict[str, ExportFormat]] = {
    f.name: f
    for f in (
        ExportFormat("pt", "PyTorch", ".pt", "train"),
        ExportFormat("torchscript", "TorchScript", ".torchscript", "train"),
        ExportFormat("onnx", "ONNX", ".onnx", "train", ("onnx", "onnxslim")),
        ExportFormat("openvino", "OpenVINO", "_openvino_model", "export-openvino", ("openvino",)),
        ExportFormat(
            "engine",
            "TensorRT",
            ".engine",
            "export-tensorrt",
            ("tensorrt",),
            needs_gpu=True,
            note="builds on an NVIDIA GPU only",
        ),
        ExportFormat("coreml", "CoreML", ".mlpackage", "export-coreml", ("coremltools",)),
        ExportFormat("coreai", "Core AI", ".aimodel", "export-coreai", ("coreai_torch",)),
        ExportFormat(
            "saved_model",
            "TensorFlow SavedModel",
            "_saved_model",
            "export-tensorflow",
            ("tensorflow", "onnx2tf", "tf_keras"),
        ),
        ExportFormat(
            "pb", "TensorFlow GraphDef", ".pb", "export-tensorflow", ("tensorflow", "onnx2tf")
        ),
        ExportFormat(
            "edgetpu",
            "TensorFlow Edge TPU",
            "_edgetpu.tflite",
            None,
            note="needs Google's edgetpu_compiler, a Debian package from Google's own apt "
            "repository (not PyPI, not Debian's)",
        ),
        ExportFormat("litert", "LiteRT (TFLite)", ".tflite", "export-litert", ("litert_torch",)),
        ExportFormat("paddle", "PaddlePaddle", "_paddle_model", "export-paddle", ("x2paddle",)),
        ExportFormat("mnn", "MNN", ".mnn", "export-mnn", ("MNN",)),
        ExportFormat("ncnn", "NCNN", "_ncnn_model", "export-ncnn", ("ncnn", "pnnx")),
        ExportFormat(
            "executorch", "ExecuTorch", "_executorch_model", "export-executorch", ("executorch",)
        ),
        ExportFormat("imx", "Sony IMX500", "_imx_model", None, note=_VENDOR + " (imxconv, Java)"),
        ExportFormat("rknn", "Rockchip RKNN", "_rknn_model", None, note=_VENDOR),
        ExportFormat("axelera", "Axelera AI", "_axelera_model", None, note=_VENDOR),
        ExportFormat("deepx", "DEEPX", "_deepx_model", None, note=_VENDOR),
        ExportFormat("qnn", "Qualcomm QNN", "_qnn.onnx", None, note=_VENDOR),
        ExportFormat("hailo", "Hailo", "_hailo_model", None, note=_VENDOR),
        ExportFormat("ascend", "Huawei Ascend", "_ascend_model", None, note=_VENDOR),
        ExportFormat("xilinx", "AMD Xilinx", "_xilinx_model", None, note=_VENDOR),
    )
}

# Other spellings, as Ultralytics maps them (and ours for "no export").
ALIASES: Final[dict[str, str]] = {
    "": "pt",
    "none": "pt",
    "pytorch": "pt",
    "torch": "pt",
    "torch_script": "torchscript",
    "tensorrt": "engine",
    "trt": "engine",
    "mlmodel": "coreml",
    "mlpackage": "coreml",
    "mlprogram": "coreml",
    "apple": "coreml",
    "ios": "coreml",
    "tflite": "litert",
    "tfjs": "litert",
    "huawei": "ascend",
    "cann": "ascend",
    "om": "ascend",
    "vitis": "xilinx",
    "vitisai": "xilinx",
    "versal": "xilinx",
}

# What every provider with the `train` extra makes, and what one that advertises no list is
# taken to make.
BASE_FORMATS: Final = frozenset({"pt", "torchscript", "onnx"})
MAX_ADVERTISED = 64


def normalize_export_format(value: Any) -> str:
    """`"ONNX"` -> `"onnx"`, `"tfjs"` -> `"litert"`, `pt`/`pytorch`/empty -> `"pt"` (no
    export); a name Ultralytics does not know -> 422 `UNSUPPORTED_EXPORT_FORMAT`."""
    text = "" if value is None else str(value).strip().lower()
    name = ALIASES.get(text, text)
    if name not in FORMATS:
        raise UnsupportedExportFormat(
            f"Export format {str(value)[:32]!r} is unknown; Ultralytics names "
            + ", ".join(FORMATS),
            details={
                "field": "export_format",
                "value": str(value)[:32],
                "supported": list(FORMATS),
            },
        )
    return name


def advertised_formats(capabilities: Mapping[str, Any] | None) -> frozenset[str]:
    """The formats a provider's registered capabilities say it makes: its
    `export_formats` list (known names only), else `BASE_FORMATS`; `pt` always."""
    listed = (capabilities or {}).get("export_formats")
    if not isinstance(listed, list):
        return BASE_FORMATS
    names = {ALIASES.get(n, n) for n in listed[:MAX_ADVERTISED] if isinstance(n, str)}
    return frozenset({"pt", *(n for n in names if n in FORMATS)})


def requested_format(spec: Mapping[str, Any] | None) -> str:
    """The format a stored job asks for (`pt`, no export, for jobs without one, such as
    container jobs); a stored name no longer known counts as itself and matches nobody."""
    raw = (spec or {}).get("export_format")
    if raw is None:
        return "pt"
    text = str(raw).strip().lower()
    return ALIASES.get(text, text)


def can_make(capabilities: Mapping[str, Any] | None, spec: Mapping[str, Any] | None) -> bool:
    """Whether a provider with these capabilities can produce the job's export format."""
    return requested_format(spec) in advertised_formats(capabilities)
