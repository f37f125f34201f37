"""The YOLO executor's reading of dataset layouts (no training: files need not decode)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from marketplace.datasets.layout import DatasetLayout, SplitDirs
from marketplace.errors import ValidationFailed
from marketplace.training import TrainingSpec
from worker.executors import ExecutionCancelled, JobSpec, RecordingReporter
from worker.executors.yolo import YoloExecutor, prepare_dataset

LABEL = "0 0.5 0.5 0.2 0.2\n"


def _spec(**overrides) -> TrainingSpec:
    return TrainingSpec.from_mapping({"model": "yolov8n", "epochs": 1, **overrides})


def _touch(path: Path, text: str = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _detection_split(root: Path, train: int = 4, val: int = 2, label: str = LABEL) -> Path:
    for split, count in (("train", train), ("val", val)):
        for i in range(count):
            _touch(root / "images" / split / f"{split}{i}.jpg")
            _touch(root / "labels" / split / f"{split}{i}.txt", label)
    return root


def _snapshot(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_detection_with_splits_gets_data_yaml_with_absolute_paths(tmp_path):
    ds = _detection_split(tmp_path / "ds")
    before = _snapshot(ds)
    prepared = prepare_dataset(ds, tmp_path / "view", _spec(classes="cat,dog"))
    assert prepared.task == "detect"
    assert (prepared.train_images, prepared.val_images) == (4, 2)
    data = json.loads(prepared.data.read_text())
    assert Path(data["train"]).is_absolute() and Path(data["val"]).is_absolute()
    assert data["names"] == ["cat", "dog"] and data["nc"] == 2
    assert len(list(Path(data["train"]).iterdir())) == 4
    assert _snapshot(ds) == before  # the verified dataset is never written to


def test_flat_detection_dataset_is_split_deterministically(tmp_path):
    ds = tmp_path / "ds"
    for i in range(10):
        _touch(ds / "images" / f"img{i}.png")
        _touch(ds / "labels" / f"img{i}.txt", LABEL)
    first = prepare_dataset(ds, tmp_path / "v1", _spec())
    second = prepare_dataset(ds, tmp_path / "v2", _spec())
    assert (first.train_images, first.val_images) == (8, 2)
    names = sorted(p.name for p in (tmp_path / "v1" / "images" / "val").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "v2" / "images" / "val").iterdir())
    assert names == ["img4.png", "img9.png"]
    assert (tmp_path / "v1" / "labels" / "val" / "img4.txt").read_text() == LABEL
    assert second.names == ("class_0",)


def test_roboflow_layout_and_wrapping_folder(tmp_path, yaml_available):
    ds = tmp_path / "upload" / "my-dataset"
    for split in ("train", "valid"):
        for i in range(3):
            _touch(ds / split / "images" / f"{split}{i}.jpg")
            _touch(ds / split / "labels" / f"{split}{i}.txt", "1 0.5 0.5 0.1 0.1\n")
    _touch(ds / "data.yaml", "names: ['ant', 'bee']\nnc: 2\n")
    prepared = prepare_dataset(tmp_path / "upload", tmp_path / "view", _spec())
    assert prepared.task == "detect"
    assert prepared.names == ("ant", "bee")
    assert (prepared.train_images, prepared.val_images) == (3, 3)


def test_classification_folders(tmp_path):
    ds = tmp_path / "ds"
    for split, count in (("train", 3), ("val", 1)):
        for name in ("cat", "dog"):
            for i in range(count):
                _touch(ds / split / name / f"{i}.jpg")
    prepared = prepare_dataset(ds, tmp_path / "view", _spec())
    assert prepared.task == "classify"
    assert prepared.names == ("cat", "dog")
    assert (prepared.train_images, prepared.val_images) == (6, 2)
    assert prepared.data == tmp_path / "view"


def test_classification_without_val_is_split_per_class(tmp_path):
    ds = tmp_path / "ds"
    for name in ("cat", "dog"):
        for i in range(5):
            _touch(ds / "train" / name / f"{i}.jpg")
    prepared = prepare_dataset(ds, tmp_path / "view", _spec())
    assert (prepared.train_images, prepared.val_images) == (8, 2)
    assert sorted(p.name for p in (tmp_path / "view" / "val" / "dog").iterdir()) == ["4.jpg"]


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda ds: _touch(ds / "readme.txt"), "unrecognised dataset layout"),
        (lambda ds: _detection_split(ds, label="3 0.5 0.5 0.1 0.1\n"), "class id 3"),
        (lambda ds: _detection_split(ds, label="cat 0.5 0.5\n"), "malformed label"),
        (lambda ds: _detection_split(ds, label=""), "no labels found"),
        (
            lambda ds: (_detection_split(ds, train=0), (ds / "images" / "train").mkdir()),
            "no training or no validation images",
        ),
    ],
)
def test_unusable_datasets_are_refused(tmp_path, make, fragment):
    ds = tmp_path / "ds"
    ds.mkdir()
    make(ds)
    with pytest.raises(ValidationFailed, match=fragment):
        prepare_dataset(ds, tmp_path / "view", _spec(classes="a,b"))


def test_classification_classes_must_match_folders(tmp_path):
    ds = tmp_path / "ds"
    for name in ("cat", "dog"):
        for i in range(5):
            _touch(ds / "train" / name / f"{i}.jpg")
    with pytest.raises(ValidationFailed, match="do not match"):
        prepare_dataset(ds, tmp_path / "view", _spec(classes="cat,bird"))
    with pytest.raises(ValidationFailed, match="asks for detect"):
        prepare_dataset(ds, tmp_path / "view", _spec(task="detect"))


def test_bad_job_is_refused_before_any_training(tmp_path):
    ds = _detection_split(tmp_path / "ds")
    executor = YoloExecutor(config_dir=tmp_path / "cfg")
    job = JobSpec("job_1", 1, "yolo_training", {"model": "yolov4", "epochs": 1}, ds)
    with pytest.raises(ValidationFailed, match="version 4"):
        executor.run(job, tmp_path / "work", RecordingReporter())
    job = JobSpec("job_1", 1, "yolo_training", {"model": "yolov5", "epochs": 1}, tmp_path / "nope")
    with pytest.raises(ValidationFailed, match="does not exist"):
        executor.run(job, tmp_path / "work", RecordingReporter())
    assert not (tmp_path / "work" / "output").exists()


def test_cancel_before_start_trains_nothing(tmp_path):
    ds = _detection_split(tmp_path / "ds")
    reporter = RecordingReporter()
    reporter.cancel()
    job = JobSpec("job_1", 1, "yolo_training", {"model": "yolov8n", "epochs": 3}, ds)
    with pytest.raises(ExecutionCancelled) as caught:
        YoloExecutor(config_dir=tmp_path / "cfg").run(job, tmp_path / "work", reporter)
    assert caught.value.completed_epochs == 0
    assert reporter.progress_calls == []


def test_stored_layout_is_used_without_detecting_again(tmp_path):
    ds = _detection_split(tmp_path / "ds", train=10, val=2)
    # As stored for this dataset by an upload that named no validation split: the view
    # holds out every fifth training image instead of reading images/val.
    stored = DatasetLayout(
        task="detect",
        layout="split",
        train=SplitDirs(images="images/train", labels="labels/train"),
    )
    prepared = prepare_dataset(ds, tmp_path / "view", _spec(), stored)
    assert (prepared.train_images, prepared.val_images) == (8, 2)
    names = sorted(p.name for p in (tmp_path / "view" / "images" / "val").iterdir())
    assert names == ["train4.jpg", "train9.jpg"]


def test_job_without_a_stored_layout_detects_it(tmp_path):
    ds = _detection_split(tmp_path / "ds", train=8, val=2)
    prepared = prepare_dataset(ds, tmp_path / "view", _spec(), None)
    assert (prepared.train_images, prepared.val_images) == (8, 2)


def test_stored_layout_that_does_not_match_the_files_is_refused(tmp_path):
    ds = _detection_split(tmp_path / "ds")
    stored = DatasetLayout(
        task="detect",
        layout="roboflow",
        train=SplitDirs(images="train/images", labels="train/labels"),
    )
    with pytest.raises(ValidationFailed, match="does not match its stored layout"):
        prepare_dataset(ds, tmp_path / "view", _spec(), stored)
    assert not (tmp_path / "view").exists()


def test_classification_view_from_a_stored_layout_under_a_wrapper(tmp_path):
    ds = tmp_path / "ds"
    for name in ("cat", "dog"):
        for i in range(5):
            _touch(ds / "wrap" / "train" / name / f"{i}.jpg")
    stored = DatasetLayout(
        task="classify", layout="split", root="wrap", train=SplitDirs(images="train")
    )
    prepared = prepare_dataset(ds, tmp_path / "view", _spec(), stored)
    assert prepared.names == ("cat", "dog")
    assert (prepared.train_images, prepared.val_images) == (8, 2)
