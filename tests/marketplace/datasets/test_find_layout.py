"""The one layout detection, shared by the node's upload and the provider's training view."""

from __future__ import annotations

from pathlib import Path

import pytest

from marketplace.datasets.errors import InvalidDataset
from marketplace.datasets.layout import (
    DatasetLayout,
    SplitDirs,
    dataset_root,
    find_layout,
    hold_out,
    images_under,
    stored_layout,
    validate_dataset,
)
from marketplace.datasets.synthetic import write_classification_dataset, write_detection_dataset

LABEL = "0 0.5 0.5 0.2 0.2\n"


def _touch(path: Path, text: str = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _detection(root: Path, splits: tuple[str, ...] = ("train", "val")) -> Path:
    for split in splits:
        _touch(root / "images" / split / f"{split}.jpg")
        _touch(root / "labels" / split / f"{split}.txt", LABEL)
    return root


def test_split_detection_validates_on_the_first_validation_folder(tmp_path):
    layout = find_layout(_detection(tmp_path, ("train", "valid", "test")))
    assert layout == DatasetLayout(
        task="detect",
        layout="split",
        train=SplitDirs(images="images/train", labels="labels/train"),
        val=SplitDirs(images="images/valid", labels="labels/valid"),
    )


def test_test_split_validates_when_it_is_the_only_other_split(tmp_path):
    layout = find_layout(_detection(tmp_path, ("train", "test")))
    assert layout.val == SplitDirs(images="images/test", labels="labels/test")


def test_flat_detection_has_no_validation_split(tmp_path):
    _touch(tmp_path / "images" / "a.png")
    _touch(tmp_path / "labels" / "a.txt", LABEL)
    layout = find_layout(tmp_path)
    assert (layout.layout, layout.train.images, layout.val) == ("flat", "images", None)


def test_roboflow_export_is_read_with_its_valid_folder(tmp_path):
    for split in ("train", "valid"):
        _touch(tmp_path / split / "images" / "a.jpg")
        _touch(tmp_path / split / "labels" / "a.txt", LABEL)
    layout = find_layout(tmp_path)
    assert layout.layout == "roboflow"
    assert layout.train == SplitDirs(images="train/images", labels="train/labels")
    assert layout.val == SplitDirs(images="valid/images", labels="valid/labels")


def test_roboflow_validation_folder_without_images_means_no_validation_split(tmp_path):
    _touch(tmp_path / "train" / "images" / "a.jpg")
    _touch(tmp_path / "train" / "labels" / "a.txt", LABEL)
    _touch(tmp_path / "val" / "notes.md")
    _touch(tmp_path / "valid" / "images" / "b.jpg")
    assert find_layout(tmp_path).val is None


def test_classification_folders(tmp_path):
    write_classification_dataset(tmp_path)
    layout = find_layout(tmp_path)
    assert (layout.task, layout.train, layout.val) == (
        "classify",
        SplitDirs(images="train"),
        SplitDirs(images="val"),
    )


def test_task_hint_looks_only_for_that_tasks_forms(tmp_path):
    # Classes named "images" and "labels" look like Roboflow to a reader that guesses.
    for name in ("images", "labels"):
        _touch(tmp_path / "train" / name / "a.jpg")
    assert find_layout(tmp_path).task == "detect"
    assert find_layout(tmp_path, task="classify").task == "classify"


def test_layout_under_three_wrapping_folders_is_found(tmp_path):
    _detection(tmp_path / "a" / "b" / "c")
    (tmp_path / ".verified").touch()  # the provider's cache marker does not count
    (tmp_path / "__MACOSX").mkdir()
    layout = find_layout(tmp_path)
    assert layout.root == "a/b/c"
    assert dataset_root(tmp_path) == tmp_path / "a" / "b" / "c"
    assert layout.locate(tmp_path) == tmp_path / "a" / "b" / "c"


def test_layout_under_four_wrapping_folders_is_not_found(tmp_path):
    _detection(tmp_path / "a" / "b" / "c" / "d")
    with pytest.raises(InvalidDataset, match="unrecognised dataset layout"):
        find_layout(tmp_path)


def test_without_a_layout_the_root_drops_one_wrapper_not_named_like_a_layout(tmp_path):
    _touch(tmp_path / "up1" / "mydata" / "images" / "a.jpg")
    assert dataset_root(tmp_path / "up1") == tmp_path / "up1" / "mydata"
    _touch(tmp_path / "up2" / "images" / "a.jpg")
    assert dataset_root(tmp_path / "up2") == tmp_path / "up2"


def test_hold_out_sends_every_fifth_item_to_validation():
    assert hold_out(list(range(10))) == ([0, 1, 2, 3, 5, 6, 7, 8], [4, 9])
    assert hold_out([1, 2, 3]) == ([1, 2], [3])  # at least one


def test_images_under_reads_provider_formats_at_any_depth(tmp_path):
    for name in ("a.JPG", "deep/b.tif", "c.heic", ".hidden.jpg", "d.gif", "__MACOSX/e.jpg"):
        _touch(tmp_path / name)
    assert [p.relative_to(tmp_path).as_posix() for p in images_under(tmp_path)] == [
        "a.JPG",
        "c.heic",
        "deep/b.tif",
    ]


def test_stored_layout_folders_are_checked_against_the_files(tmp_path):
    layout = find_layout(_detection(tmp_path))
    (tmp_path / "images" / "val" / "val.jpg").unlink()
    (tmp_path / "images" / "val").rmdir()
    with pytest.raises(
        InvalidDataset, match="does not match its stored layout: no folder images/val"
    ):
        layout.locate(tmp_path)


@pytest.mark.parametrize("path", ["/etc", "../up", "images/../..", "a\\b", ""])
def test_stored_layout_cannot_point_outside_the_dataset(path):
    raw = {"task": "classify", "layout": "split", "train": {"images": path}}
    with pytest.raises(InvalidDataset, match="malformed"):
        stored_layout({"dataset": raw})


def test_detection_layout_must_name_its_labels():
    raw = {"task": "detect", "layout": "flat", "train": {"images": "images"}}
    with pytest.raises(InvalidDataset, match="malformed"):
        stored_layout({"dataset": raw})


def test_job_stored_before_layouts_has_none():
    old_summary = {"task": "detect", "layout": "split", "splits": {}, "files": 3, "bytes": 9}
    assert stored_layout({"model": "yolov8n", "dataset": old_summary}) is None
    assert stored_layout({"model": "yolov8n"}) is None


@pytest.mark.parametrize(
    ("make", "task"),
    [
        (lambda root: write_detection_dataset(root), "detect"),
        (lambda root: write_detection_dataset(root, layout="flat"), "detect"),
        (lambda root: write_detection_dataset(root, val=0), "detect"),
        (lambda root: write_classification_dataset(root), "classify"),
    ],
)
def test_upload_stores_the_layout_the_provider_detects(tmp_path, make, task):
    root = make(tmp_path)
    summary = validate_dataset(root, task=task, classes=("cat", "dog"))
    stored = stored_layout({"dataset": summary.model_dump(mode="json")})
    assert stored == find_layout(root)
    assert stored is not None and stored.root == ""
