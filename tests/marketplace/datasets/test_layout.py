from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from marketplace.datasets.errors import InvalidDataset
from marketplace.datasets.layout import image_type, validate_dataset
from marketplace.datasets.synthetic import (
    png_bytes,
    write_classification_dataset,
    write_detection_dataset,
)

CLASSES = ("cat", "dog")


def _errors(root: Path, task: str = "detect", classes=CLASSES) -> list[str]:
    with pytest.raises(InvalidDataset) as err:
        validate_dataset(root, task=task, classes=classes)
    assert err.value.status == 422 and err.value.code == "INVALID_DATASET"
    return err.value.details["errors"]


def test_split_detection_dataset_passes(tmp_path):
    summary = validate_dataset(write_detection_dataset(tmp_path), task="detect", classes=CLASSES)
    assert summary.layout == "split"
    assert summary.splits == {
        "train": {"images": 6, "labels": 6},
        "val": {"images": 2, "labels": 2},
    }


def test_flat_detection_dataset_passes(tmp_path):
    root = write_detection_dataset(tmp_path, layout="flat")
    assert validate_dataset(root, task="detect", classes=CLASSES).layout == "flat"


def test_train_only_with_background_images_and_data_yaml_passes(tmp_path):
    root = write_detection_dataset(tmp_path, val=0)
    (root / "images" / "train" / "background.png").write_bytes(png_bytes(2, 2, [b"\0" * 6] * 2))
    (root / "data.yaml").write_text("names: [cat, dog]\n")
    summary = validate_dataset(root, task="detect", classes=CLASSES)
    assert summary.splits["train"] == {"images": 7, "labels": 6}


def test_class_id_at_num_classes_is_refused(tmp_path):
    root = write_detection_dataset(tmp_path)
    (root / "labels" / "train" / "train_0000.txt").write_text("2 0.5 0.5 0.1 0.1\n")
    assert "is not below numClasses=2" in _errors(root)[0]


@pytest.mark.parametrize(
    "line",
    [
        "0 1.5 0.5 0.1 0.1",
        "0 0.5 0.5 0.1",
        "0 0.5 -0.1 0.1 0.1",
        "x 0.5 0.5 0.1 0.1",
        "0 nan 0 0 0",
    ],
)
def test_bad_label_lines_are_refused(tmp_path, line):
    root = write_detection_dataset(tmp_path)
    (root / "labels" / "val" / "val_0001.txt").write_text(f"0 0.5 0.5 0.2 0.2\n\n{line}\n")
    assert _errors(root)[0].startswith("labels/val/val_0001.txt:3:")


def test_label_without_image_is_refused(tmp_path):
    root = write_detection_dataset(tmp_path)
    (root / "images" / "train" / "train_0003.png").unlink()
    assert "no image with the same name" in _errors(root)[0]


def test_image_with_bad_header_is_refused(tmp_path):
    root = write_detection_dataset(tmp_path)
    (root / "images" / "train" / "train_0002.png").write_bytes(b"GIF89a not allowed")
    assert "unreadable image" in _errors(root)[0]


def test_disallowed_extension_is_refused(tmp_path):
    root = write_detection_dataset(tmp_path)
    shutil.move(root / "images" / "val" / "val_0000.png", root / "images" / "val" / "val_0000.gif")
    errors = _errors(root)
    assert any("not an image" in e for e in errors)


def test_mixed_flat_and_split_layout_is_refused(tmp_path):
    root = write_detection_dataset(tmp_path)
    shutil.copy(root / "images" / "train" / "train_0000.png", root / "images" / "loose.png")
    assert "flat" in _errors(root)[0]


def test_unknown_split_is_refused(tmp_path):
    root = write_detection_dataset(tmp_path)
    shutil.move(root / "images" / "val", root / "images" / "validation")
    shutil.move(root / "labels" / "val", root / "labels" / "validation")
    assert any("'validation' is not one of" in e for e in _errors(root))


def test_stray_folder_is_refused(tmp_path):
    root = write_detection_dataset(tmp_path)
    (root / "extra").mkdir()
    (root / "extra" / "notes.txt").write_text("hi")
    assert any("unexpected folder 'extra'" in e for e in _errors(root))


def test_missing_labels_folder_is_refused(tmp_path):
    root = write_detection_dataset(tmp_path)
    shutil.rmtree(root / "labels")
    assert "no labels/ folder" in " ".join(_errors(root))


def test_classification_dataset_passes(tmp_path):
    root = write_classification_dataset(tmp_path, classes=CLASSES)
    summary = validate_dataset(root, task="classify", classes=CLASSES)
    assert summary.splits["train"] == {"images": 8, "classes": 2}


def test_classification_folders_must_match_classes(tmp_path):
    root = write_classification_dataset(tmp_path, classes=("cat", "bird"))
    errors = _errors(root, task="classify")
    assert any("'bird'" in e for e in errors) and any("['dog']" in e for e in errors)


def test_empty_dataset_is_refused(tmp_path):
    assert "no files" in _errors(tmp_path)[0]


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "png"),
        (b"BM" + b"\x00" * 14, "bmp"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"GIF89a", None),
        (b"", None),
    ],
)
def test_image_type_reads_magic_numbers(header, kind):
    assert image_type(header) == kind


def test_labelimg_classes_txt_is_not_a_label(tmp_path):
    root = write_detection_dataset(tmp_path, layout="flat")
    (root / "labels" / "classes.txt").write_text("cat\ndog\n")
    summary = validate_dataset(root, task="detect", classes=CLASSES)
    assert summary.splits["all"]["labels"] == 8


def test_upper_case_label_extension_is_refused(tmp_path):
    root = write_detection_dataset(tmp_path)
    label = root / "labels" / "train" / "train_0000.txt"
    label.rename(label.with_suffix(".TXT"))
    assert "lower case" in _errors(root)[0]
