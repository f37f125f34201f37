"""Tiny synthetic YOLO datasets, deterministic and dependency-free (PNG via zlib+struct).

Tests, the provider's smoke runs and the demo use them: each image is a flat background
with one or two filled rectangles whose colour encodes the class, and the label file
holds the matching normalised boxes, so a model can actually learn something from a few
epochs. The same arguments always produce the same bytes (and therefore the same CID).
"""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
]


def png_bytes(width: int, height: int, rows: list[bytes]) -> bytes:
    """Encode 8-bit RGB `rows` (each `3*width` bytes) as a PNG file."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + row for row in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def _scene(
    rng: random.Random, size: int, num_classes: int, max_boxes: int
) -> tuple[bytes, list[tuple[int, float, float, float, float]]]:
    bg = bytes((rng.randrange(90, 140),) * 3)
    canvas = [bytearray(bg * size) for _ in range(size)]
    boxes = []
    for _ in range(rng.randint(1, max_boxes)):
        cls = rng.randrange(num_classes)
        w = rng.randint(size // 5, size // 2)
        h = rng.randint(size // 5, size // 2)
        x0 = rng.randint(0, size - w)
        y0 = rng.randint(0, size - h)
        colour = bytes(PALETTE[cls % len(PALETTE)])
        for y in range(y0, y0 + h):
            canvas[y][3 * x0 : 3 * (x0 + w)] = colour * w
        boxes.append((cls, (x0 + w / 2) / size, (y0 + h / 2) / size, w / size, h / size))
    return png_bytes(size, size, [bytes(r) for r in canvas]), boxes


def write_detection_dataset(
    root: Path,
    *,
    num_classes: int = 2,
    train: int = 6,
    val: int = 2,
    size: int = 64,
    seed: int = 0,
    layout: str = "split",
    max_boxes: int = 2,
) -> Path:
    """Write `images/` and `labels/` (split into train/val, or flat) under `root`."""
    rng = random.Random(seed)
    splits = [("train", train), ("val", val)] if layout == "split" else [("", train + val)]
    for split, count in splits:
        img_dir = root / "images" / split if split else root / "images"
        lbl_dir = root / "labels" / split if split else root / "labels"
        img_dir.mkdir(parents=True, exist_ok=True)
        lbl_dir.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            png, boxes = _scene(rng, size, num_classes, max_boxes)
            stem = f"{split or 'img'}_{i:04d}"
            (img_dir / f"{stem}.png").write_bytes(png)
            lines = "".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n" for c, x, y, w, h in boxes)
            (lbl_dir / f"{stem}.txt").write_text(lines)
    return root


def write_classification_dataset(
    root: Path,
    *,
    classes: tuple[str, ...] = ("cat", "dog"),
    train: int = 4,
    val: int = 2,
    size: int = 32,
    seed: int = 0,
) -> Path:
    """Write `train/<class>/` and `val/<class>/` folders of solid-colour images."""
    rng = random.Random(seed)
    for split, count in (("train", train), ("val", val)):
        for index, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            colour = PALETTE[index % len(PALETTE)]
            for i in range(count):
                jitter = bytes(max(0, min(255, c + rng.randint(-20, 20))) for c in colour)
                (folder / f"{name}_{i:04d}.png").write_bytes(
                    png_bytes(size, size, [jitter * size] * size)
                )
    return root


SHAPES = ("circle", "square", "triangle")


def _inside(shape: str, x: float, y: float, cx: float, cy: float, r: float) -> bool:
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return abs(dx) <= r * 0.8 and abs(dy) <= r * 0.8
    if shape == "triangle":  # apex up, base at cy + r; half-width grows linearly downwards
        return -r <= dy <= r and abs(dx) <= (dy + r) * 0.6
    raise ValueError(f"unknown shape {shape!r}")


def shape_png(rng: random.Random, shape: str, size: int) -> bytes:
    """One `size`x`size` image of `shape` in a random colour, size and place, on a random
    background of another colour: only the outline tells the classes apart."""
    bg = (rng.randrange(0, 70),) * 3
    fg = (rng.randrange(180, 256),) * 3
    r = rng.uniform(0.22, 0.4) * size
    cx = rng.uniform(r, size - r)
    cy = rng.uniform(r, size - r)
    bg_px, fg_px = bytes(bg), bytes(fg)
    rows = []
    for y in range(size):
        row = bytearray()
        for x in range(size):
            row += fg_px if _inside(shape, x + 0.5, y + 0.5, cx, cy, r) else bg_px
        rows.append(bytes(row))
    return png_bytes(size, size, rows)


def write_shapes_dataset(
    root: Path,
    *,
    classes: tuple[str, ...] = SHAPES,
    train: int = 100,
    val: int = 30,
    size: int = 64,
    seed: int = 0,
) -> Path:
    """Write a shape classification set: `train/<shape>/` and `val/<shape>/` with `train`
    and `val` images per class (circle, square, triangle in random colours, sizes and
    places), the same bytes for the same arguments."""
    rng = random.Random(seed)
    for split, count in (("train", train), ("val", val)):
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (folder / f"{name}_{i:04d}.png").write_bytes(shape_png(rng, name, size))
    return root
