"""The dataset as Ultralytics reads it: a view of symlinks under the work directory.

The layout (where the train and validation images are) comes from the job: the node
detected it at upload and stored it (`marketplace.datasets.layout`). A job stored before
layouts were has none, and the view detects it with the same `find_layout`. Either way the
folders it names are checked against the files.

The view holds per-file links into real directories (Ultralytics resolves the split
directories it is given, so directory links would send its label caches into the dataset
itself) and, for detection, a `data.yaml` with absolute paths into the view. The
CID-verified dataset is never written to. Without a validation split, every fifth image
is held out (`marketplace.datasets.layout.hold_out`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from marketplace.datasets.layout import (
    DatasetLayout,
    SplitDirs,
    find_layout,
    hold_out,
    images_under,
)
from marketplace.errors import ValidationFailed
from marketplace.training import CLASSIFY, DETECT, TrainingSpec

NAME_FILES = ("data.yaml", "dataset.yaml", "data.yml")


@dataclass(frozen=True)
class PreparedDataset:
    """The dataset as Ultralytics will read it."""

    task: str
    data: Path  # data.yaml (detection) or the dataset directory (classification)
    names: tuple[str, ...]
    train_images: int
    val_images: int


def prepare_dataset(
    dataset_dir: Path,
    view_dir: Path,
    spec: TrainingSpec,
    layout: DatasetLayout | None = None,
) -> PreparedDataset:
    """Build the linked view of the dataset in `view_dir`.

    Args:
        dataset_dir: the fetched, verified dataset (read only).
        view_dir: where to build the view (replaced if present).
        spec: the job's training parameters (task and class names, if given).
        layout: the layout stored with the job; None detects it.

    Raises:
        ValidationFailed: the dataset is missing, not a layout, not the stored layout, not
            the job's task, or has too few images, unusable labels or unnamed classes.
    """
    if not dataset_dir.is_dir():
        raise ValidationFailed(f"dataset directory {dataset_dir} does not exist")
    if layout is None:
        layout = find_layout(dataset_dir)
    root = layout.locate(dataset_dir)
    if spec.task and spec.task != layout.task:
        raise ValidationFailed(
            f"the job asks for {spec.task} but the dataset layout is {layout.task}"
        )
    if view_dir.exists():
        shutil.rmtree(view_dir)
    view_dir.mkdir(parents=True)
    if layout.task == CLASSIFY:
        return _classification_view(root, layout, view_dir, spec)
    return _detection_view(root, layout, view_dir, spec)


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target.resolve(), target_is_directory=target.is_dir())


def _detection_plan(root: Path, layout: DatasetLayout) -> dict[str, tuple[SplitDirs, list[Path]]]:
    """Split name in the view -> (source folders, chosen images)."""
    if layout.val is None:
        files = images_under(root / layout.train.images)
        if len(files) < 2:
            raise ValidationFailed("a detection dataset needs at least 2 images")
        train_files, val_files = hold_out(files)
        return {"train": (layout.train, train_files), "val": (layout.train, val_files)}
    return {
        split: (dirs, images_under(root / dirs.images))
        for split, dirs in (("train", layout.train), ("val", layout.val))
    }


def _detection_view(
    root: Path, layout: DatasetLayout, view: Path, spec: TrainingSpec
) -> PreparedDataset:
    counts: dict[str, int] = {}
    label_files: list[Path] = []
    for split, (dirs, chosen) in _detection_plan(root, layout).items():
        assert dirs.labels is not None  # DatasetLayout: detection splits name their labels
        src_images, src_labels = root / dirs.images, root / dirs.labels
        counts[split] = len(chosen)
        (view / "labels" / split).mkdir(parents=True, exist_ok=True)
        for image in chosen:
            rel = image.relative_to(src_images)
            _link(image, view / "images" / split / rel)
            label = (src_labels / rel).with_suffix(".txt")
            if label.is_file():
                _link(label, (view / "labels" / split / rel).with_suffix(".txt"))
                label_files.append(label)
    if counts["train"] == 0 or counts["val"] == 0:
        raise ValidationFailed("the dataset has no training or no validation images")

    max_id = max_label_id(label_files)
    if max_id < 0:
        raise ValidationFailed("no labels found: a detection dataset needs labels/*.txt files")
    names = (
        spec.classes or names_from_dataset(root) or tuple(f"class_{i}" for i in range(max_id + 1))
    )
    if max_id >= len(names):
        raise ValidationFailed(
            f"labels use class id {max_id} but only {len(names)} classes are named",
            details={"field": "classes"},
        )
    data_yaml = view / "data.yaml"
    base = view.resolve()
    # JSON is valid YAML. Absolute paths into the view (not the link targets): Ultralytics
    # derives each label path from its image path.
    document = {
        "path": str(base),
        "train": str(base / "images" / "train"),
        "val": str(base / "images" / "val"),
        "nc": len(names),
        "names": list(names),
    }
    data_yaml.write_text(json.dumps(document, indent=2))
    return PreparedDataset(DETECT, data_yaml, tuple(names), counts["train"], counts["val"])


def max_label_id(label_files: list[Path]) -> int:
    """The highest class id in the labels (-1 if none); ValidationFailed on a malformed line."""
    max_id = -1
    for path in label_files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            try:
                class_id = int(fields[0])
                coords = [float(v) for v in fields[1:]]
            except ValueError:
                class_id, coords = -1, []
            if class_id < 0 or len(coords) < 4:
                raise ValidationFailed(
                    f"malformed label {path.name}:{number}: {line[:80]!r}",
                    details={"file": path.name, "line": number},
                )
            max_id = max(max_id, class_id)
    return max_id


def names_from_dataset(root: Path) -> tuple[str, ...] | None:
    """Class names the dataset carries: `names` of its data.yaml (a list, or a mapping by
    id), else the lines of a `classes.txt` at the root or in `labels/`; None if neither."""
    for candidate in NAME_FILES:
        path = root / candidate
        if path.is_file():
            import yaml  # PyYAML: part of the [train] extra

            with contextlib.suppress(yaml.YAMLError, AttributeError, TypeError):
                names = yaml.safe_load(path.read_text()).get("names")
                if isinstance(names, dict):
                    names = [names[k] for k in sorted(names)]
                if isinstance(names, list) and names:
                    return tuple(str(n) for n in names)
    for listing in (root / "classes.txt", root / "labels" / "classes.txt"):
        if listing.is_file():
            listed = [n.strip() for n in listing.read_text().splitlines() if n.strip()]
            if listed:
                return tuple(listed)
    return None


def _classification_view(
    root: Path, layout: DatasetLayout, view: Path, spec: TrainingSpec
) -> PreparedDataset:
    train = root / layout.train.images
    classes = sorted(c.name for c in train.iterdir() if c.is_dir() and not c.name.startswith("."))
    if len(classes) < 2:
        raise ValidationFailed("a classification dataset needs at least 2 class folders in train/")
    if spec.classes and set(spec.classes) != set(classes):
        raise ValidationFailed(
            f"classes {list(spec.classes)} do not match the dataset's folders {classes}",
            details={"field": "classes"},
        )
    val = root / layout.val.images if layout.val is not None else None
    counts = {"train": 0, "val": 0}
    for name in classes:
        files = images_under(train / name)
        if val is not None:
            in_val = images_under(val / name) if (val / name).is_dir() else []
            plan = {"train": (train / name, files), "val": (val / name, in_val)}
        else:
            if len(files) < 2:
                raise ValidationFailed(f"class {name!r} needs at least 2 images to split off val")
            train_files, val_files = hold_out(files)
            plan = {"train": (train / name, train_files), "val": (train / name, val_files)}
        for split, (source, chosen) in plan.items():
            counts[split] += len(chosen)
            (view / split / name).mkdir(parents=True, exist_ok=True)
            for image in chosen:
                _link(image, view / split / name / image.relative_to(source))
    if counts["train"] == 0 or counts["val"] == 0:
        raise ValidationFailed("the dataset has no training or no validation images")
    return PreparedDataset(CLASSIFY, view, tuple(classes), counts["train"], counts["val"])
