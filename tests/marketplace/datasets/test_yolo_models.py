from __future__ import annotations

import pytest

from marketplace.datasets.errors import UnsupportedExportFormat, UnsupportedModel
from marketplace.datasets.yolo_models import (
    SUPPORTED_EXPORT_FORMATS,
    normalize_export_format,
    normalize_model,
    supported_models,
)


@pytest.mark.parametrize(
    ("name", "weights", "task"),
    [
        ("yolov5", "yolov5nu.pt", "detect"),
        ("YOLOv5s", "yolov5su.pt", "detect"),
        ("yolov8", "yolov8n.pt", "detect"),
        ("yolov8x", "yolov8x.pt", "detect"),
        ("yolo v11", "yolo11n.pt", "detect"),
        ("yolov11m", "yolo11m.pt", "detect"),
        ("yolo11l.pt", "yolo11l.pt", "detect"),
        ("yolov8s-cls", "yolov8s-cls.pt", "classify"),
        ("YOLO11n-cls", "yolo11n-cls.pt", "classify"),
    ],
)
def test_model_spellings_map_to_ultralytics_weights(name, weights, task):
    spec = normalize_model(name)
    assert (spec.weights, spec.task) == (weights, task)
    assert spec.weights.removesuffix(".pt") in supported_models()


@pytest.mark.parametrize("name", ["yolov7", "yolov8q", "gpt-4", "", "yolov5n-cls", "yolov8n-seg"])
def test_unknown_models_are_refused(name):
    with pytest.raises(UnsupportedModel):
        normalize_model(name)


def test_export_formats_are_case_insensitive():
    assert normalize_export_format("ONNX") == "onnx"
    assert normalize_export_format("pytorch") == "pt"


@pytest.mark.parametrize("fmt", ["tfjs", "coreml", "tflite", "engine", "nonsense"])
def test_unsupported_export_formats_list_the_supported_ones(fmt):
    with pytest.raises(UnsupportedExportFormat) as err:
        normalize_export_format(fmt)
    assert err.value.status == 422
    assert err.value.details["supported"] == list(SUPPORTED_EXPORT_FORMATS)
    assert "onnx" in err.value.message
