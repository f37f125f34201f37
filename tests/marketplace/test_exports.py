"""The export-format rule (`marketplace.exports`): names as Ultralytics takes them, what a
provider advertises, and who can make a job."""

from __future__ import annotations

import pytest

from marketplace.errors import UnsupportedExportFormat
from marketplace.exports import (
    BASE_FORMATS,
    FORMATS,
    advertised_formats,
    can_make,
    normalize_export_format,
    requested_format,
)


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("ONNX", "onnx"),
        (None, "pt"),
        ("", "pt"),
        ("PyTorch", "pt"),
        ("torch_script", "torchscript"),
        ("OpenVINO", "openvino"),
        ("tfjs", "litert"),  # seed 000's example; Ultralytics 8.4.83+ exports LiteRT for it
        ("tflite", "litert"),
        ("TensorRT", "engine"),
        ("mlpackage", "coreml"),
        (" saved_model ", "saved_model"),
        ("ncnn", "ncnn"),
        ("vitis", "xilinx"),
    ],
)
def test_every_ultralytics_name_is_accepted(given, canonical):
    assert normalize_export_format(given) == canonical


def test_an_unknown_format_is_refused_listing_the_known_ones():
    with pytest.raises(UnsupportedExportFormat) as caught:
        normalize_export_format("gif")
    assert caught.value.details["supported"] == list(FORMATS)
    assert caught.value.details["field"] == "export_format"


def test_the_table_matches_ultralytics():
    exporter = pytest.importorskip("ultralytics.engine.exporter")
    ultralytics_names = set(exporter.export_formats()["Argument"][1:])
    assert set(FORMATS) - {"pt"} == ultralytics_names


def test_advertised_formats():
    assert advertised_formats(None) == BASE_FORMATS
    assert advertised_formats({"gpus": []}) == BASE_FORMATS  # an older daemon
    assert advertised_formats({"export_formats": ["onnx", "tflite", 3, "gif"]}) == {
        "pt",
        "onnx",
        "litert",
    }
    assert advertised_formats({"export_formats": []}) == {"pt"}
    assert advertised_formats({"export_formats": "onnx"}) == BASE_FORMATS


def test_can_make():
    caps = {"export_formats": ["pt", "openvino"]}
    assert can_make(caps, {"export_format": "openvino"})
    assert not can_make(caps, {"export_format": "onnx"})
    assert can_make(caps, {}) and can_make(caps, None)  # no export: the weights
    assert requested_format({"export_format": "TFJS"}) == "litert"
    assert not can_make(caps, {"export_format": "no-such"})
