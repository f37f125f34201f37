from __future__ import annotations

import struct
import zlib

from marketplace.datasets.layout import validate_dataset
from marketplace.datasets.synthetic import (
    SHAPES,
    _inside,
    png_bytes,
    write_detection_dataset,
    write_shapes_dataset,
)
from marketplace.training import CLASSIFY


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_arguments_give_the_same_bytes(tmp_path):
    a = write_detection_dataset(tmp_path / "a", seed=7)
    b = write_detection_dataset(tmp_path / "b", seed=7)
    c = write_detection_dataset(tmp_path / "c", seed=8)
    assert _tree(a) == _tree(b)
    assert _tree(a) != _tree(c)


def test_png_is_well_formed():
    rows = [bytes([x, y, 0] * 1)[:3] * 3 for x in range(2) for y in range(1)]
    data = png_bytes(3, 2, rows)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks[kind] = body
        pos += 12 + length
    assert struct.unpack(">II", chunks[b"IHDR"][:8]) == (3, 2)
    assert len(zlib.decompress(chunks[b"IDAT"])) == 2 * (1 + 9)


def test_labels_match_the_drawn_boxes(tmp_path):
    root = write_detection_dataset(tmp_path, num_classes=3, train=5, val=0)
    for label in (root / "labels" / "train").iterdir():
        for line in label.read_text().splitlines():
            cls, *coords = line.split()
            assert 0 <= int(cls) < 3
            assert all(0 <= float(v) <= 1 for v in coords)


def test_shapes_set_is_deterministic_and_a_valid_classification_upload(tmp_path):
    a = write_shapes_dataset(tmp_path / "a", train=3, val=1, size=32, seed=1)
    b = write_shapes_dataset(tmp_path / "b", train=3, val=1, size=32, seed=1)
    assert _tree(a) == _tree(b)
    assert sorted(_tree(a)) == sorted(
        f"{split}/{shape}/{shape}_{i:04d}.png"
        for split, count in (("train", 3), ("val", 1))
        for shape in SHAPES
        for i in range(count)
    )
    summary = validate_dataset(a, task=CLASSIFY, classes=SHAPES)
    assert summary.task == CLASSIFY


def test_the_three_shapes_differ_in_outline():
    # a point inside the square's corner is outside the circle; the triangle's apex is narrow
    assert _inside("square", 0.75, 0.75, 0, 0, 1) and not _inside("circle", 0.75, 0.75, 0, 0, 1)
    assert _inside("circle", 0.5, -0.8, 0, 0, 1) and not _inside("triangle", 0.5, -0.8, 0, 0, 1)
