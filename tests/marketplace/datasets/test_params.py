from __future__ import annotations

import pytest

from marketplace.datasets.errors import InvalidAddress, InvalidReward
from marketplace.datasets.params import (
    canonical_json,
    parse_address,
    parse_job_params,
    parse_reward,
)
from marketplace.errors import InvalidField, UnsupportedExportFormat, UnsupportedModel
from marketplace.training import parse_classes
from tests.fixtures.datasets import ADDRESS, form


def test_lowercase_address_is_accepted_and_checksummed():
    assert parse_address(ADDRESS.lower()) == ADDRESS


def test_valid_checksum_address_is_kept():
    assert parse_address(ADDRESS) == ADDRESS


def test_mixed_case_address_with_bad_checksum_is_refused():
    bad = ADDRESS[:-1] + ("a" if ADDRESS[-1] == "A" else "A")
    with pytest.raises(InvalidAddress) as err:
        parse_address(bad)
    assert err.value.code == "INVALID_ADDRESS"


@pytest.mark.parametrize(
    "raw", ["0x123", "e003212E9A5b41a923566b3E093fe1c3D1c68A5A", "0x" + "g" * 40]
)
def test_malformed_address_is_refused(raw):
    with pytest.raises(InvalidAddress):
        parse_address(raw)


@pytest.mark.parametrize(
    ("raw", "wei"),
    [
        ("0.5", 5 * 10**17),
        ("500", 500 * 10**18),
        (".25", 25 * 10**16),
        ("0.000000000000000001", 1),
        ("1.500000000000000000000", 15 * 10**17),  # trailing zeros past 18 decimals are exact
    ],
)
def test_reward_is_parsed_to_exact_wei(raw, wei):
    assert parse_reward(raw) == wei


@pytest.mark.parametrize(
    "raw", ["0", "0.0", "-1", "1e3", "abc", "", "0.0000000000000000001", "1,5"]
)
def test_bad_reward_is_refused(raw):
    with pytest.raises(InvalidReward):
        parse_reward(raw)


def test_classes_accept_json_array_and_comma_string():
    assert parse_classes('["dog","cat"]') == ("dog", "cat")
    assert parse_classes("dog, cat") == ("dog", "cat")


@pytest.mark.parametrize("raw", ['["a","a"]', "a,,b", '["a/b"]', "[1,2]", "[", '["a\\nb"]'])
def test_bad_classes_are_refused(raw):
    with pytest.raises(InvalidField):
        parse_classes(raw)


def test_full_form_is_normalised():
    params = parse_job_params(form(model="yolo v11", exportFormat="TorchScript", imgsz="1024"))
    assert params.model == "yolo v11"
    assert params.model_spec.weights_file == "yolo11n.pt"
    assert params.export_format == "torchscript"
    assert params.requester_address == ADDRESS
    assert params.imgsz == 1024
    meta = params.metadata("QmX")
    assert set(meta) == {
        "model",
        "epochs",
        "imgsz",
        "exportFormat",
        "numClasses",
        "classes",
        "folderName",
        "reward",
        "requesterAddress",
        "folder_cid",
    }
    assert canonical_json(meta) == canonical_json(dict(reversed(list(meta.items()))))


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"numClasses": "3"}, InvalidField),
        ({"epochs": "0"}, InvalidField),
        ({"epochs": "10001"}, InvalidField),
        ({"epochs": "ten"}, InvalidField),
        ({"imgsz": "650"}, InvalidField),
        ({"imgsz": "16"}, InvalidField),
        ({"imgsz": "8192"}, InvalidField),
        ({"model": "resnet50"}, UnsupportedModel),
        ({"model": "yolov5s-cls"}, UnsupportedModel),
        ({"exportFormat": "gif"}, UnsupportedExportFormat),
        ({"exportFormat": "tfjs.zip"}, UnsupportedExportFormat),
        ({"reward": None}, InvalidField),
        ({"surprise": "x"}, InvalidField),
    ],
)
def test_bad_form_is_refused(overrides, error):
    with pytest.raises(error):
        parse_job_params(form(**overrides))
