"""A dataset imported as it streams in (`StagedDataset`) has the DAG `ipfs add -r` gives
the same tree, whatever sizes its bytes arrive in; its checks read the staged listing."""

from __future__ import annotations

import os
import random
from pathlib import Path, PurePosixPath

import pytest

from marketplace.content.importer import import_path
from marketplace.content.staged import StagedBlocks
from marketplace.datasets.layout import dataset_root, validate_dataset
from marketplace.datasets.staged import PathCollision, StagedDataset
from marketplace.datasets.synthetic import write_detection_dataset

MIB = 1024 * 1024


def _stage(tree: Path, out: Path, seed: int = 0) -> StagedDataset:
    """Stage every file under `tree`, each sent in pieces of random sizes."""
    rng = random.Random(seed)
    staged = StagedDataset(StagedBlocks(out))
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        writer = staged.open_file(PurePosixPath(path.relative_to(tree).as_posix()))
        data = memoryview(path.read_bytes())
        while data:
            n = rng.choice([1, 7, 4096, 65536, 262144, 300000, 1 << 20])
            writer.write(data[:n])
            data = data[n:]
        writer.close()
    return staged


def test_staged_folder_has_the_cid_of_ipfs_add(tmp_path):
    tree = write_detection_dataset(tmp_path / "ds")
    (tree / "images" / "train" / "big.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + os.urandom(45 * MIB + 3)  # more than 174 chunks: two levels
    )
    (tree / "labels" / "train" / "empty.txt").write_bytes(b"")
    staged = _stage(tree, tmp_path / "blocks")
    assert staged.import_dir().cid == import_path(tree).cid


def test_checks_read_the_staged_listing(tmp_path):
    tree = write_detection_dataset(tmp_path / "ds")
    staged = _stage(tree, tmp_path / "blocks", seed=1)
    root = dataset_root(staged.root)  # type: ignore[arg-type]
    summary = validate_dataset(root, task="detect", classes=("cat", "dog"))
    assert summary == validate_dataset(tree, task="detect", classes=("cat", "dog"))


def test_a_repeated_or_colliding_path_is_refused(tmp_path):
    staged = StagedDataset(StagedBlocks(tmp_path / "blocks"))
    staged.open_file(PurePosixPath("a/b.txt")).close()
    for rel in ("a/b.txt", "a", "a/b.txt/c"):
        with pytest.raises(PathCollision):
            staged.open_file(PurePosixPath(rel))
