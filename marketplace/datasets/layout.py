"""The YOLO dataset layout, for both sides of the wire: where a dataset's training and
validation images (and labels) are, and what the node accepts at upload.

The node detects the layout once, when a dataset is uploaded (`validate_dataset`), and
stores it with the job as `spec["dataset"]` (a `DatasetSummary`, which is a
`DatasetLayout` plus counts). The provider builds its training view from that stored
layout (`stored_layout`) and detects it itself, with the same `find_layout`, only for a
job stored before layouts were.

What a provider reads (`find_layout`), checked in this order:
- detection, split: `images/<split>/...` and `labels/<split>/...`, used when `images/train/`
  exists;
- detection, flat: `images/...` and `labels/...`;
- detection, Roboflow: `train/images/...` and `train/labels/...`, validation in
  `<split>/images` and `<split>/labels`;
- classification: `<split>/<class name>/...`, where some class folder of `train/` holds
  an image.
The training split is `train`. The validation split is the first of `val`, `valid`,
`validation`, `test` that exists (Roboflow: and holds `images/`). Without one, the
provider holds out every fifth training image, in path order, for validation (at least
one; per class for classification): an 80/20 split that is the same on every provider
(`hold_out`). A label is the image's path with `labels` for `images` and `.txt` for the
extension; an image without a label is a background image. Images are files with one of
`IMAGE_EXTENSIONS` (Ultralytics' formats, any case), found at any depth of a split.

The root: the layout may sit under up to three single wrapping folders (a zip of
`mydata/...`); hidden entries (the provider's `.verified` marker) and `__MACOSX` do not
count while descending. When no level holds a layout, the root is the folder without its
single wrapping folder unless that folder is named like part of a layout (`images`,
`train`...), so that the upload's errors name paths inside the user's folder
(`dataset_root`).

What the node accepts at upload (`validate_dataset`) is narrower: the canonical layouts,
each of which `find_layout` reads the same way. The task comes from the model name.
- Detection: split (splits `train`, required, `val`, `test`) or flat, every image and
  label file at the same depth. Every label file (`.txt`, lower case, as YOLO derives it
  from the image path) needs an image with the same stem in the same split; at least one
  label file must exist. A `classes.txt` among the labels (as LabelImg writes it) is kept
  and not read as a label. A label line is `class cx cy w h`: an integer class id below
  `numClasses` and four finite numbers in [0, 1]. Blank lines are allowed.
- Classification: `<split>/<class name>/<name>.<ext>` with `train` required and
  `val`/`test` optional; the class folders of `train` are exactly the job's `classes`,
  those of `val`/`test` a subset, and each class folder of `train` holds an image.
- Images: extensions `UPLOAD_IMAGE_EXTENSIONS` (`.jpg .jpeg .png .bmp .webp`, any case)
  and a file header that is JPEG, PNG, BMP or WebP (the header decides; a PNG named `.jpg`
  passes since every decoder reads by content). The node reads only these four headers,
  so it accepts only them.
- The root may also hold small documentation/config files (`.yaml .yml .txt .md .json`,
  up to 1 MiB each), such as a `data.yaml` or a README; anything else is refused.
Errors are collected (up to 20) and raised together as one 422 `INVALID_DATASET`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator

from marketplace.datasets.errors import InvalidDataset
from marketplace.training import CLASSIFY, DETECT

# -------------------------------------------------------------------------- the layout

IMAGE_EXTENSIONS = frozenset(
    {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"}
)
TRAIN_SPLIT = "train"
VAL_SPLITS = ("val", "valid", "validation", "test")  # the first present validates
MAX_WRAPPERS = 3
# Folder names that belong to a layout and therefore are never a wrapper to strip.
LAYOUT_NAMES = frozenset({"images", "labels", TRAIN_SPLIT, *VAL_SPLITS})
LAYOUT_HELP = (
    "expected detection (images/ and labels/, each flat or with train/ and val/ subfolders; "
    "or train/images + train/labels) or classification (train/<class>/*.jpg and val/<class>/)"
)


def _relative(value: str) -> str:
    """A relative POSIX path inside the dataset (a stored layout must not point outside)."""
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a relative path inside the dataset: {value[:80]!r}")
    return value


def _relative_or_empty(value: str) -> str:
    return value if value == "" else _relative(value)


RelativePath = Annotated[str, AfterValidator(_relative)]


class SplitDirs(BaseModel):
    """The folders of one split, relative to the layout's root."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    images: RelativePath  # detection: the images; classification: the class folders
    labels: RelativePath | None = None  # detection: the matching label files


class DatasetLayout(BaseModel):
    """Where a dataset's training and validation images are (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # a summary's counts ride along

    task: Literal["detect", "classify"]
    layout: Literal["split", "flat", "roboflow"]  # the form; classification is "split"
    root: Annotated[str, AfterValidator(_relative_or_empty)] = ""  # wrappers above it
    train: SplitDirs
    val: SplitDirs | None = None  # None: the provider holds out every fifth train image

    @model_validator(mode="after")
    def _labels_match_task(self) -> DatasetLayout:
        for split in (self.train, self.val):
            if split is not None and (split.labels is None) != (self.task == CLASSIFY):
                raise ValueError("detection splits name their labels, classification splits not")
        return self

    def locate(self, folder: Path) -> Path:
        """The layout's root under `folder`, after checking that the folders it names are
        there; `InvalidDataset` if they are not (the files are not this layout's)."""
        root = folder / self.root if self.root else folder
        for split in (self.train, self.val):
            if split is not None and not (root / split.images).is_dir():
                raise InvalidDataset(
                    f"the dataset does not match its stored layout: no folder "
                    f"{PurePosixPath(self.root, split.images)}",
                    details={"layout": self.model_dump(mode="json")},
                )
        return root


class DatasetSummary(DatasetLayout):
    """The layout plus what the upload checks counted; stored with the job's spec."""

    splits: dict[str, dict[str, int]] = {}
    files: int = 0
    bytes: int = 0


def stored_layout(spec: Mapping[str, Any]) -> DatasetLayout | None:
    """The layout stored with a job at upload (`spec["dataset"]`), or None when the job
    has none: made without a dataset, or stored before layouts were (its summary holds
    no `train`). `InvalidDataset` if one is stored but malformed."""
    raw = spec.get("dataset") if isinstance(spec, Mapping) else None
    if not isinstance(raw, Mapping) or "train" not in raw:
        return None
    try:
        return DatasetLayout.model_validate(raw)
    except ValidationError as exc:
        raise InvalidDataset(
            f"the job's stored dataset layout is malformed: {exc.errors()[0]['msg']}"
        ) from exc


def is_image(path: Path) -> bool:
    """Named like an image a provider reads (not hidden)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def images_under(folder: Path) -> list[Path]:
    """Every image at any depth under `folder`, sorted (the split's training images)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and is_image(p) and "__MACOSX" not in p.relative_to(folder).parts
    )


T = TypeVar("T")


def hold_out(items: Sequence[T]) -> tuple[list[T], list[T]]:
    """Deterministic 80/20 split of sorted items: every fifth to validation, at least one.
    Returns (train, val)."""
    val = [p for i, p in enumerate(items) if i % 5 == 4] or list(items[-1:])
    chosen = set(val)
    return [p for p in items if p not in chosen], val


def _first_dir(folder: Path, names: Sequence[str]) -> str | None:
    return next((name for name in names if (folder / name).is_dir()), None)


def _detect_here(folder: Path, task: str | None) -> DatasetLayout | None:
    """The layout with its root at `folder` (only `task`'s forms when given), or None."""
    if task != CLASSIFY:
        if (folder / "images").is_dir() and (folder / "labels").is_dir():
            if not (folder / "images" / TRAIN_SPLIT).is_dir():
                flat = SplitDirs(images="images", labels="labels")
                return DatasetLayout(task=DETECT, layout="flat", train=flat)
            name = _first_dir(folder / "images", VAL_SPLITS)
            return DatasetLayout(
                task=DETECT,
                layout="split",
                train=SplitDirs(images="images/train", labels="labels/train"),
                val=SplitDirs(images=f"images/{name}", labels=f"labels/{name}") if name else None,
            )
        if all((folder / TRAIN_SPLIT / sub).is_dir() for sub in ("images", "labels")):
            name = _first_dir(folder, VAL_SPLITS)
            if name is not None and not (folder / name / "images").is_dir():
                name = None  # the first validation folder present decides, even without images/
            return DatasetLayout(
                task=DETECT,
                layout="roboflow",
                train=SplitDirs(images="train/images", labels="train/labels"),
                val=SplitDirs(images=f"{name}/images", labels=f"{name}/labels") if name else None,
            )
    if task != DETECT:
        train = folder / TRAIN_SPLIT
        if train.is_dir() and any(
            c.is_dir() and any(is_image(f) for f in c.iterdir()) for c in train.iterdir()
        ):
            name = _first_dir(folder, VAL_SPLITS)
            return DatasetLayout(
                task=CLASSIFY,
                layout="split",
                train=SplitDirs(images=TRAIN_SPLIT),
                val=SplitDirs(images=name) if name else None,
            )
    return None


def _single_subfolder(folder: Path) -> Path | None:
    entries = [c for c in folder.iterdir() if not c.name.startswith((".", "__MACOSX"))]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else None


def _search(folder: Path, task: str | None) -> tuple[Path, DatasetLayout | None]:
    current = folder
    for depth in range(MAX_WRAPPERS + 1):
        layout = _detect_here(current, task)
        if layout is not None:
            return current, layout
        inner = _single_subfolder(current) if depth < MAX_WRAPPERS else None
        if inner is None:
            break
        current = inner
    inner = _single_subfolder(folder)
    if inner is not None and inner.name.lower() not in LAYOUT_NAMES:
        return inner, None
    return folder, None


def dataset_root(folder: Path) -> Path:
    """The folder that holds the layout: `folder` itself or a folder under up to three
    single wrapping folders; without any layout, `folder` minus its single wrapping folder
    (when that is not named like part of a layout)."""
    return _search(folder, None)[0]


def find_layout(folder: Path, task: str | None = None) -> DatasetLayout:
    """Detect the layout of the dataset in `folder` (only `task`'s forms when given);
    its `root` names the wrapping folders it sits under. `InvalidDataset` if none."""
    root, layout = _search(folder, task)
    if layout is None:
        raise InvalidDataset(f"unrecognised dataset layout: {LAYOUT_HELP}")
    relative = root.relative_to(folder).as_posix()
    return layout.model_copy(update={"root": "" if relative == "." else relative})


# -------------------------------------------------------------------- upload checks

UPLOAD_IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
UPLOAD_SPLITS = (TRAIN_SPLIT, "val", "test")
ROOT_EXTRA_EXTENSIONS = frozenset({".yaml", ".yml", ".txt", ".md", ".json"})
ROOT_EXTRA_MAX_BYTES = 1024 * 1024
LABEL_MAX_BYTES = 16 * 1024 * 1024
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
    if not isinstance(root, Path):  # a staged upload (`staged.StagedPath`) lists itself
        return root.list_files()  # type: ignore[unreachable]
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
    if rel.suffix.lower() not in UPLOAD_IMAGE_EXTENSIONS:
        allowed = ", ".join(sorted(UPLOAD_IMAGE_EXTENSIONS))
        errors.add(f"{rel}: not an image (allowed: {allowed})")
        return False
    if image_type(_head(root / rel, 16)) is None:
        errors.add(f"{rel}: unreadable image (header is not JPEG, PNG, BMP or WebP)")
        return False
    return True


def _head(path: Path, n: int) -> bytes:
    """A file's first `n` bytes (a staged upload keeps them aside: `read_head`)."""
    if not isinstance(path, Path):
        return path.read_head(n)  # type: ignore[unreachable]
    with open(path, "rb") as fh:
        return fh.read(n)


def _check_label(
    root: Path, rel: PurePosixPath, size: int, num_classes: int, errors: _Errors
) -> None:
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


def _check_detection(
    root: Path, files: dict[PurePosixPath, int], num_classes: int, errors: _Errors
) -> dict[str, dict[str, int]]:
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
    if depths not in ({2}, {3}):
        errors.add(
            "images/ and labels/ must hold files directly (flat) or in train/val/test "
            "folders (split), not both or deeper"
        )
        errors.raise_if_any()
    is_split = depths == {3}

    by_split: dict[str, dict[str, PurePosixPath]] = {}
    for rel in images:
        split = rel.parts[1] if is_split else ""
        if is_split and split not in UPLOAD_SPLITS:
            errors.add(f"{rel}: split folder {split!r} is not one of {', '.join(UPLOAD_SPLITS)}")
            continue
        if not _check_image(root, rel, errors):
            continue
        stems = by_split.setdefault(split, {})
        if rel.stem in stems:
            errors.add(f"{rel}: same name as {stems[rel.stem]} (a label could not tell them apart)")
            continue
        stems[rel.stem] = rel
    if is_split and TRAIN_SPLIT not in by_split:
        errors.add("images/train/ is required in the split layout")

    label_count: dict[str, int] = {}
    for rel, size in labels.items():
        split = rel.parts[1] if is_split else ""
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
    return {
        split or "all": {"images": len(stems), "labels": label_count.get(split, 0)}
        for split, stems in sorted(by_split.items())
    }


def _check_classification(
    root: Path, files: dict[PurePosixPath, int], classes: tuple[str, ...], errors: _Errors
) -> dict[str, dict[str, int]]:
    per_split: dict[str, dict[str, int]] = {}
    for rel, size in files.items():
        if len(rel.parts) == 1:
            _check_root_extra(rel, size, errors)
            continue
        split = rel.parts[0]
        if split not in UPLOAD_SPLITS:
            errors.add(f"{rel}: unexpected folder {split!r} (classification needs train/ and val/)")
            continue
        if len(rel.parts) != 3:
            errors.add(f"{rel}: images must sit in {split}/<class name>/")
            continue
        if not _check_image(root, rel, errors):
            continue
        counts = per_split.setdefault(split, {})
        counts[rel.parts[1]] = counts.get(rel.parts[1], 0) + 1
    if TRAIN_SPLIT not in per_split:
        errors.add("train/ with one folder per class is required")
    wanted = set(classes)
    splits: dict[str, dict[str, int]] = {}
    for split, counts in sorted(per_split.items()):
        found = set(counts)
        extra = sorted(found - wanted)
        if extra:
            errors.add(f"{split}/: folders {extra} are not among classes {list(classes)}")
        if split == TRAIN_SPLIT:
            missing = [c for c in classes if c not in found]
            if missing:
                errors.add(f"train/: no images for classes {missing}")
        splits[split] = {"images": sum(counts.values()), "classes": len(found)}
    errors.raise_if_any()
    return splits


def validate_dataset(root: Path, *, task: str, classes: tuple[str, ...]) -> DatasetSummary:
    """Check the staged dataset under `root` (its `dataset_root`) for a job of `task`
    ("detect" or "classify") with these `classes`, and detect its layout; return the
    summary to store with the job, or raise `InvalidDataset` (422)."""
    errors = _Errors()
    files = _list_files(root, errors)
    if not files:
        errors.add("the upload holds no files")
    errors.raise_if_any()
    if task == CLASSIFY:
        splits = _check_classification(root, files, classes, errors)
    else:
        splits = _check_detection(root, files, len(classes), errors)
    layout = find_layout(root, task=CLASSIFY if task == CLASSIFY else DETECT)
    return DatasetSummary(
        **layout.model_dump(),
        splits=splits,
        files=len(files),
        bytes=sum(files.values()),
    )
