"""A dataset imported as it streams in (`StagedDataset`) has the DAG `ipfs add -r` gives
the same tree, whatever sizes its bytes arrive in; its checks read the staged listing."""

from __future__ import annotations

import asyncio
import os
import random
import threading
from pathlib import Path, PurePosixPath

import pytest

from marketplace.content.importer import import_path
from marketplace.content.staged import StagedBlocks
from marketplace.datasets import staged as staged_module
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
    for rel in ("a/b.txt", "a", "a/b.txt/c", "a/b.txt/c/d"):
        with pytest.raises(PathCollision):
            staged.open_file(PurePosixPath(rel))
    staged.open_file(PurePosixPath("a/c.txt")).close()  # beside a file: a folder seen before
    staged.open_file(PurePosixPath("top.txt")).close()
    assert staged.children == {
        PurePosixPath(): {"a", "top.txt"},
        PurePosixPath("a"): {"b.txt", "c.txt"},
    }


def _stage_reused_buffer(tree: Path, staged: StagedDataset) -> None:
    """Stage every file under `tree` through one bytearray that is overwritten after each
    write, as a reader reusing its buffer does."""
    buf = bytearray(300_000)
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        writer = staged.open_file(PurePosixPath(path.relative_to(tree).as_posix()))
        with path.open("rb") as f:
            while n := f.readinto(buf):
                writer.write(memoryview(buf)[:n])
                buf[:n] = b"\xff" * n  # the pipeline must have taken a copy
        writer.close()


def test_a_pipelined_dataset_has_the_same_cid_and_listing(tmp_path):
    tree = write_detection_dataset(tmp_path / "ds")
    (tree / "images" / "train" / "big.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + os.urandom(3 * MIB + 5)
    )
    staged = StagedDataset(StagedBlocks(tmp_path / "blocks"))
    with staged.pipelined():
        _stage_reused_buffer(tree, staged)
    assert not _stage_threads()  # the pipeline's thread ended with the block
    assert staged.import_dir().cid == import_path(tree).cid
    assert set(staged.root.list_files()) == {
        PurePosixPath(p.relative_to(tree).as_posix()) for p in tree.rglob("*") if p.is_file()
    }


class _FailingBlocks(StagedBlocks):
    """Blocks that fail to be written from the `fail_at`th on, as a full disk does."""

    def __init__(self, root: Path, fail_at: int) -> None:
        super().__init__(root)
        self.fail_at = fail_at
        self.calls = 0

    def put(self, cid, parts):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise OSError(28, "No space left on device")
        super().put(cid, parts)


def test_a_write_failing_in_the_pipeline_reaches_the_caller_and_stops_it(tmp_path):
    staged = StagedDataset(_FailingBlocks(tmp_path / "blocks", fail_at=3))
    data = os.urandom(2 * MIB)
    with pytest.raises(OSError, match="No space left") as err, staged.pipelined():
        for i in range(50):
            writer = staged.open_file(PurePosixPath(f"f{i}.bin"))
            writer.write(data)
            writer.close()
    assert err.value.errno == 28
    assert staged.blocks.calls == 3  # nothing was written after the failure
    assert not _stage_threads()


def test_an_async_caller_yields_while_the_pipeline_holds_its_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(staged_module, "PIPELINE_BYTES", 1 * MIB)
    release = threading.Event()
    blocks = StagedBlocks(tmp_path / "blocks")
    original = blocks.put

    def slow_put(cid, parts):
        release.wait(10)
        original(cid, parts)

    blocks.put = slow_put  # type: ignore[method-assign]
    staged = StagedDataset(blocks)
    submitted = []

    async def feed():
        writer = staged.open_file(PurePosixPath("a.bin"))
        for _ in range(16):  # 4 MiB in 256 KiB chunks
            writer.write(os.urandom(256 * 1024))  # never waits itself
            submitted.append(1)
            await staged.room()
        writer.close()

    async def main():
        feeder = asyncio.ensure_future(feed())
        await asyncio.sleep(0.5)
        assert not feeder.done()  # held back: about 1 MiB waits for the hashing thread
        assert 4 <= len(submitted) <= 6
        release.set()
        await asyncio.wait_for(feeder, 10)

    with staged.pipelined():
        asyncio.run(main())
    assert len(submitted) == 16
    assert staged.root.list_files() == {PurePosixPath("a.bin"): 4 * MIB}


def test_a_block_write_failing_behind_the_hashing_reaches_the_caller(tmp_path, monkeypatch):
    blocks = StagedBlocks(tmp_path / "blocks")
    writes = []
    original = blocks._write

    def failing_write(key, parts):
        writes.append(key)
        if len(writes) >= 3:
            raise OSError(28, "No space left on device")
        original(key, parts)

    monkeypatch.setattr(blocks, "_write", failing_write)
    staged = StagedDataset(blocks)
    data = os.urandom(2 * MIB)
    with pytest.raises(OSError, match="No space left"), staged.pipelined():
        for i in range(50):
            writer = staged.open_file(PurePosixPath(f"f{i}.bin"))
            writer.write(data)
            writer.close()
    assert len(writes) == 3  # the writer stopped at its first failure
    assert len(list((tmp_path / "blocks").iterdir())) == 2
    assert not _stage_threads()


def _stage_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dcm-stage")]


def test_an_async_caller_waiting_for_room_is_woken_by_a_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(staged_module, "PIPELINE_BYTES", 1 * MIB)
    release = threading.Event()
    staged = StagedDataset(_FailingBlocks(tmp_path / "blocks", fail_at=2))
    original = staged.blocks.put

    def slow_put(cid, parts):
        release.wait(10)
        original(cid, parts)

    staged.blocks.put = slow_put  # type: ignore[method-assign]

    async def feed():
        writer = staged.open_file(PurePosixPath("a.bin"))
        for _ in range(16):
            writer.write(os.urandom(256 * 1024))
            await staged.room()

    async def main():
        feeder = asyncio.ensure_future(feed())
        await asyncio.sleep(0.3)
        assert not feeder.done()  # waiting for room
        release.set()  # the second block fails: the waiter is woken and the next write raises
        with pytest.raises(OSError, match="No space left"):
            await asyncio.wait_for(feeder, 10)

    with pytest.raises(OSError), staged.pipelined():
        asyncio.run(main())
    assert not _stage_threads()
