"""YOLO dataset layout checks, run on the staged upload before anything is stored.

Detection (`task="detect"`), two accepted layouts:
- split: `images/<split>/<name>.<ext>` and `labels/<split>/<name>.txt`, splits among
  `train` (required), `val`, `test`; a provider uses `train` for validation when `val`
  is absent.
- flat: `images/<name>.<ext>` and `labels/<name>.txt`; a provider trains and validates
  on the whole set.
Every label file (`.txt`, lower case, as YOLO derives it from the image path) needs an
image with the same stem in the same split (images without a label are background images,
as in YOLO); at least one label file must exist. A `classes.txt` among the labels (as
LabelImg writes it) is kept and not read as a label. A label
line is `class cx cy w h`: an integer class id below `numClasses` and four finite
numbers in [0, 1]. Blank lines are allowed.

Classification (`task="classify"`): `<split>/<class name>/<name>.<ext>` with `train`
required and `val`/`test` optional; the class folders of `train` are exactly the job's
`classes`, those of `val`/`test` a subset, and each class folder of `train` holds an
image.

Images: extensions `.jpg .jpeg .png .bmp .webp` (any case) and a file header that is
JPEG, PNG, BMP or WebP (the header decides; a PNG named `.jpg` passes since every
decoder reads by content). The root may also hold small documentation/config files
(`.yaml .yml .txt .md .json`, up to 1 MiB each), such as a `data.yaml` or a README;
anything else is refused. Errors are collected (up to 20) and raised together as one
422 `INVALID_DATASET`.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from marketplace.datasets.errors import InvalidDataset

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
ROOT_EXTRA_EXTENSIONS = frozenset({".yaml", ".yml", ".txt", ".md", ".json"})
ROOT_EXTRA_MAX_BYTES = 1024 * 1024
LABEL_MAX_BYTES = 16 * 1024 * 1024
SPLITS = ("train", "val", "test")
MAX_ERRORS = 20

_CLASS_ID = re.compile(r"^\d{1,6}$")


def image_type(header: bytes) -> str | None:
    """The image format named by a file's first bytes, or None."""
    if header.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if header.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if header.startswith(b"BM") and len(header) >= 14:
        return "bmp"
    if len(header) >= 12 and header[:4] == b"RIFF" and header[8:12] == b"WEBP":
        return "webp"
    return None


@dataclass
class DatasetSummary:
    """What the checks saw; stored with the job's spec."""

    task: str
    layout: str  # "split" or "flat" (detection), "split" (classification)
    splits: dict[str, dict[str, int]] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "layout": self.layout,
            "splits": self.splits,
            "files": self.files,
            "bytes": self.bytes,
        }


class _Errors:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.total = 0

    def add(self, message: str) -> None:
        self.total += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append(message)

    def raise_if_any(self) -> None:
        if self.total:
            more = f" (and {self.total - 1} more)" if self.total > 1 else ""
            raise InvalidDataset(
                f"Invalid dataset: {self.items[0]}{more}",
                details={"errors": self.items, "error_count": self.total},
            )


def _list_files(root: Path, errors: _Errors) -> dict[PurePosixPath, int]:
    files: dict[PurePosixPath, int] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if Path(dirpath, d).is_symlink()]:
            full = Path(dirpath, name)
            rel = PurePosixPath(full.relative_to(root).as_posix())
            if full.is_symlink() or not full.is_file():
                errors.add(f"{rel}: not a regular file")
                continue
            files[rel] = full.stat().st_size
    return files


def _check_image(root: Path, rel: PurePosixPath, errors: _Errors) -> bool:
    if rel.suffix.lower() not in IMAGE_EXTENSIONS:
        errors.add(f"{rel}: not an image (allowed: {', '.join(sorted(IMAGE_EXTENSIONS))})")
        return False
    with open(root / rel, "rb") as fh:
        header = fh.read(16)
    if image_type(header) is None:
        errors.add(f"{rel}: unreadable image (header is not JPEG, PNG, BMP or WebP)")
        return False
    return True


def _check_label(root: Path, rel: PurePosixPath, size: int, num_classes: int, errors: _Errors):
    if size > LABEL_MAX_BYTES:
        errors.add(f"{rel}: label file over {LABEL_MAX_BYTES} bytes")
        return
    raw = (root / rel).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        errors.add(f"{rel}: label file is not UTF-8 text")
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        where = f"{rel}:{lineno}"
        if len(tokens) != 5:
            errors.add(f"{where}: expected 'class cx cy w h', got {len(tokens)} values")
            continue
        if not _CLASS_ID.match(tokens[0]):
            errors.add(f"{where}: class id {tokens[0][:16]!r} is not a non-negative integer")
            continue
        if int(tokens[0]) >= num_classes:
            errors.add(f"{where}: class id {int(tokens[0])} is not below numClasses={num_classes}")
            continue
        try:
            values = [float(t) for t in tokens[1:]]
        except ValueError:
            errors.add(f"{where}: coordinates must be numbers")
            continue
        if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
            errors.add(f"{where}: coordinates must be normalised to [0, 1]")


def _check_root_extra(rel: PurePosixPath, size: int, errors: _Errors) -> None:
    if rel.suffix.lower() not in ROOT_EXTRA_EXTENSIONS or size > ROOT_EXTRA_MAX_BYTES:
        errors.add(f"{rel}: unexpected file at the dataset root")


def _validate_detection(
    root: Path, files: dict[PurePosixPath, int], num_classes: int, errors: _Errors
) -> DatasetSummary:
    images: dict[PurePosixPath, int] = {}
    labels: dict[PurePosixPath, int] = {}
    for rel, size in files.items():
        top = rel.parts[0]
        if len(rel.parts) == 1:
            _check_root_extra(rel, size, errors)
        elif top == "images":
            images[rel] = size
        elif top == "labels":
            labels[rel] = size
        else:
            errors.add(f"{rel}: unexpected folder {top!r} (detection needs images/ and labels/)")
    if not images:
        errors.add("no images/ folder with images")
    if not labels:
        errors.add("no labels/ folder with label files")
    errors.raise_if_any()

    depths = {len(rel.parts) for rel in [*images, *labels]}
    if depths == {2}:
        layout = "flat"
    elif depths == {3}:
        layout = "split"
    else:
        errors.add(
            "images/ and labels/ must hold files directly (flat) or in train/val/test "
            "folders (split), not both or deeper"
        )
        errors.raise_if_any()
    summary = DatasetSummary(task="detect", layout=layout)

    by_split: dict[str, dict[str, PurePosixPath]] = {}
    for rel in images:
        split = rel.parts[1] if layout == "split" else ""
        if layout == "split" and split not in SPLITS:
            errors.add(f"{rel}: split folder {split!r} is not one of {', '.join(SPLITS)}")
            continue
        if not _check_image(root, rel, errors):
            continue
        stems = by_split.setdefault(split, {})
        if rel.stem in stems:
            errors.add(f"{rel}: same name as {stems[rel.stem]} (a label could not tell them apart)")
            continue
        stems[rel.stem] = rel
    if layout == "split" and "train" not in by_split:
        errors.add("images/train/ is required in the split layout")

    label_count: dict[str, int] = {}
    for rel, size in labels.items():
        split = rel.parts[1] if layout == "split" else ""
        if rel.name == "classes.txt":
            continue  # LabelImg writes the class list next to the labels; not a label file
        if rel.suffix != ".txt":
            errors.add(f"{rel}: label files must end in .txt (lower case, as YOLO looks them up)")
            continue
        if rel.stem not in by_split.get(split, {}):
            errors.add(f"{rel}: no image with the same name in images/{split or ''}".rstrip("/"))
            continue
        label_count[split] = label_count.get(split, 0) + 1
        _check_label(root, rel, size, num_classes, errors)
    errors.raise_if_any()

    for split, stems in sorted(by_split.items()):
        summary.splits[split or "all"] = {"images": len(stems), "labels": label_count.get(split, 0)}
    return summary


def _validate_classification(
    root: Path, files: dict[PurePosixPath, int], classes: tuple[str, ...], errors: _Errors
) -> DatasetSummary:
    summary = DatasetSummary(task="classify", layout="split")
    per_split: dict[str, dict[str, int]] = {}
    for rel, size in files.items():
        if len(rel.parts) == 1:
            _check_root_extra(rel, size, errors)
            continue
        split = rel.parts[0]
        if split not in SPLITS:
            errors.add(f"{rel}: unexpected folder {split!r} (classification needs train/ and val/)")
            continue
        if len(rel.parts) != 3:
            errors.add(f"{rel}: images must sit in {split}/<class name>/")
            continue
        if not _check_image(root, rel, errors):
            continue
        counts = per_split.setdefault(split, {})
        counts[rel.parts[1]] = counts.get(rel.parts[1], 0) + 1
    if "train" not in per_split:
        errors.add("train/ with one folder per class is required")
    wanted = set(classes)
    for split, counts in sorted(per_split.items()):
        found = set(counts)
        extra = sorted(found - wanted)
        if extra:
            errors.add(f"{split}/: folders {extra} are not among classes {list(classes)}")
        if split == "train":
            missing = [c for c in classes if c not in found]
            if missing:
                errors.add(f"train/: no images for classes {missing}")
        summary.splits[split] = {"images": sum(counts.values()), "classes": len(found)}
    errors.raise_if_any()
    return summary


def validate_dataset(root: Path, *, task: str, classes: tuple[str, ...]) -> DatasetSummary:
    """Check the staged dataset under `root` for a job of `task` ("detect" or "classify")
    with these `classes`; return a summary or raise `InvalidDataset` (422)."""
    errors = _Errors()
    files = _list_files(root, errors)
    if not files:
        errors.add("the upload holds no files")
    errors.raise_if_any()
    if task == "classify":
        summary = _validate_classification(root, files, classes, errors)
    else:
        summary = _validate_detection(root, files, len(classes), errors)
    summary.files = len(files)
    summary.bytes = sum(files.values())
    return summary
