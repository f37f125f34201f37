"""Model names as requesters write them -> Ultralytics definitions; job parameters parsing."""

from __future__ import annotations

import pytest

from marketplace.errors import ValidationFailed
from marketplace.training import (
    TrainingSpec,
    normalize_export_format,
    normalize_model_name,
    resolve_model,
)


@pytest.mark.parametrize(
    ("requested", "task", "config", "weights"),
    [
        ("yolov5", None, "yolov5n.yaml", "yolov5n.pt"),
        ("yolov5n", None, "yolov5n.yaml", "yolov5n.pt"),
        ("yolov5su", None, "yolov5s.yaml", "yolov5s.pt"),
        ("yolov8n", "detect", "yolov8n.yaml", "yolov8n.pt"),
        ("yolov8", None, "yolov8n.yaml", "yolov8n.pt"),
        ("YOLOv8s", None, "yolov8s.yaml", "yolov8s.pt"),
        ("yolo v11", None, "yolo11n.yaml", "yolo11n.pt"),
        ("YOLO V11 m", None, "yolo11m.yaml", "yolo11m.pt"),
        ("yolov11l", None, "yolo11l.yaml", "yolo11l.pt"),
        ("yolo11n", None, "yolo11n.yaml", "yolo11n.pt"),
        ("yolo_v8_x", None, "yolov8x.yaml", "yolov8x.pt"),
        ("yolov8n.pt", None, "yolov8n.yaml", "yolov8n.pt"),
        ("yolov9", None, "yolov9t.yaml", "yolov9t.pt"),
        ("yolov9c", None, "yolov9c.yaml", "yolov9c.pt"),
        ("yolov10b", None, "yolov10b.yaml", "yolov10b.pt"),
        ("yolov3-tiny", None, "yolov3-tiny.yaml", "yolov3-tiny.pt"),
        ("yolov3", None, "yolov3.yaml", "yolov3.pt"),
        ("yolo12s", None, "yolo12s.yaml", "yolo12s.pt"),
        ("yolo26n", None, "yolo26n.yaml", "yolo26n.pt"),
        ("yolov8n", "classify", "yolov8n-cls.yaml", "yolov8n-cls.pt"),
        ("yolo v11", "classify", "yolo11n-cls.yaml", "yolo11n-cls.pt"),
        ("yolo11s-cls", None, "yolo11s-cls.yaml", "yolo11s-cls.pt"),
    ],
)
def test_requested_names_map_to_yaml_definitions(requested, task, config, weights):
    choice = resolve_model(requested, task)
    assert choice.config == config
    assert choice.weights_file == weights
    assert choice.config.endswith(".yaml")  # never a .pt model name: that downloads


def test_name_suffix_sets_the_task():
    assert resolve_model("yolov8n-cls").task == "classify"
    assert resolve_model("yolov8n").task == "detect"
    assert normalize_model_name("YOLO v11") == "yolo11n"
    assert normalize_model_name("yolov8s-cls") == "yolov8s-cls"


def test_every_mapped_definition_exists_in_ultralytics(yolo_config_dir):
    from ultralytics.nn.tasks import yaml_model_load

    for name in (
        "yolov5",
        "yolov6s",
        "yolov8m",
        "yolov9e",
        "yolov10x",
        "yolo11x",
        "yolo12l",
        "yolo26n",
        "yolov3-spp",
    ):
        assert yaml_model_load(resolve_model(name).config)["backbone"]
    for name in ("yolov8", "yolo11", "yolo12", "yolo26"):
        assert yaml_model_load(resolve_model(name, "classify").config)["backbone"]


@pytest.mark.parametrize(
    ("requested", "fragment"),
    [
        ("resnet50", "not a YOLO model name"),
        ("yolov4", "version 4 is not available"),
        ("yolov7x", "version 7 is not available"),
        ("yolov8q", "no scale 'q'"),
        ("yolov9n", "no scale 'n'"),
        ("yolov3s", "no size scales"),
        ("yolov8-tiny", "only for yolov3"),
        ("yolov8n-seg", "task 'seg' is not supported"),
        ("yolov8n-foo", "unknown suffix"),
        ("", "non-empty"),
    ],
)
def test_unknown_names_are_refused_with_a_clear_error(requested, fragment):
    with pytest.raises(ValidationFailed) as caught:
        resolve_model(requested)
    assert fragment in caught.value.message
    assert caught.value.code == "UNSUPPORTED_MODEL"
    assert caught.value.status == 422


def test_family_without_classification_head_is_refused_for_classification():
    with pytest.raises(ValidationFailed, match="no classification model"):
        resolve_model("yolov5", "classify")
    with pytest.raises(ValidationFailed, match="asks for classify but the dataset is detect"):
        resolve_model("yolov8n-cls", "detect")


def test_spec_reads_seed_000_spelling():
    spec = TrainingSpec.from_mapping(
        {
            "model": "yolo v11",
            "epochs": "3",
            "imgsz": "640",
            "exportFormat": "ONNX",
            "numClasses": 2,
            "classes": "dog, cat",
        }
    )
    assert (spec.epochs, spec.imgsz, spec.export_format) == (3, 640, "onnx")
    assert spec.classes == ("dog", "cat")
    assert spec.batch is None


def test_spec_reads_json_classes_and_snake_case():
    spec = TrainingSpec.from_mapping(
        {
            "model": "yolov8n",
            "epochs": 2,
            "export_format": "torchscript",
            "classes": '["a","b"]',
            "batch": 4,
        }
    )
    assert spec.classes == ("a", "b")
    assert spec.export_format == "torchscript"
    assert spec.batch == 4
    assert spec.imgsz == 640


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"epochs": 2}, "model"),
        ({"model": "yolov8n"}, "epochs"),
        ({"model": "yolov8n", "epochs": 0}, "epochs"),
        ({"model": "yolov8n", "epochs": "many"}, "epochs"),
        ({"model": "yolov8n", "epochs": True}, "epochs"),
        ({"model": "yolov8n", "epochs": 1, "imgsz": 8}, "imgsz"),
        ({"model": "yolov8n", "epochs": 1, "exportFormat": "gif"}, "export_format"),
        ({"model": "yolov8n", "epochs": 1, "classes": "a,b", "numClasses": 3}, "num_classes"),
        ({"model": "yolov8n", "epochs": 1, "classes": "a,a"}, "classes"),
        ({"model": "yolov8n", "epochs": 1, "classes": "[1, 2]"}, "classes"),
        ({"model": "yolov8n", "epochs": 1, "task": "segment"}, "task"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(params, field):
    with pytest.raises(ValidationFailed) as caught:
        TrainingSpec.from_mapping(params)
    assert caught.value.details["field"] == field


def test_export_formats():
    assert normalize_export_format("ONNX") == "onnx"
    assert normalize_export_format(None) == "pt"
    assert normalize_export_format("PyTorch") == "pt"
    assert normalize_export_format("TorchScript") == "torchscript"
