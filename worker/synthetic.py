"""Tiny synthetic image datasets (coloured shapes on noise) for tests, benchmarks and `dcm demo`.

Deterministic for a given seed, written with Pillow (which Ultralytics brings), in the layouts
the YOLO executor accepts: detection `images/{train,val}` + `labels/{train,val}` (YOLO txt
labels) and classification `train/<class>/`, `val/<class>/`.
"""

from __future__ import annotations

import random
from pathlib import Path

COLOURS = {"red": (220, 40, 40), "blue": (40, 70, 220), "green": (40, 180, 60)}


def _background(rng: random.Random, size: int):
    from PIL import Image

    noise = bytes(rng.randrange(90, 160) for _ in range(size * size * 3))
    return Image.frombytes("RGB", (size, size), noise)


def make_detection_dataset(
    root: Path,
    *,
    train: int = 16,
    val: int = 8,
    size: int = 64,
    classes: tuple[str, ...] = ("red", "blue"),
    seed: int = 0,
) -> Path:
    """One to two filled boxes per image; class = colour. Returns `root`."""
    from PIL import ImageDraw

    rng = random.Random(seed)
    for split, count in (("train", train), ("val", val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image = _background(rng, size)
            draw = ImageDraw.Draw(image)
            lines = []
            for _ in range(rng.randint(1, 2)):
                class_id = rng.randrange(len(classes))
                w, h = rng.randint(size // 4, size // 2), rng.randint(size // 4, size // 2)
                x0, y0 = rng.randint(0, size - w), rng.randint(0, size - h)
                draw.rectangle([x0, y0, x0 + w, y0 + h], fill=COLOURS[classes[class_id]])
                cx, cy = (x0 + w / 2) / size, (y0 + h / 2) / size
                lines.append(f"{class_id} {cx:.6f} {cy:.6f} {w / size:.6f} {h / size:.6f}")
            image.save(root / "images" / split / f"{split}_{index:03d}.png")
            (root / "labels" / split / f"{split}_{index:03d}.txt").write_text(
                "\n".join(lines) + "\n"
            )
    return root


def make_classification_dataset(
    root: Path,
    *,
    train_per_class: int = 8,
    val_per_class: int = 4,
    size: int = 32,
    classes: tuple[str, ...] = ("red", "blue"),
    seed: int = 0,
) -> Path:
    """One filled disc per image; the folder (class) is its colour. Returns `root`."""
    from PIL import ImageDraw

    rng = random.Random(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                image = _background(rng, size)
                r = rng.randint(size // 4, size // 2 - 1)
                cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
                ImageDraw.Draw(image).ellipse([cx - r, cy - r, cx + r, cy + r], fill=COLOURS[name])
                image.save(folder / f"{name}_{index:03d}.png")
    return root
