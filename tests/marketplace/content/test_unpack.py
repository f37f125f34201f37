"""A DAG received as one CAR, unpacked into files: exactly the tree its root names, every
block verified, nothing trusted that the CAR did not prove."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from marketplace.content import car, dag
from marketplace.content.cid import Cid
from marketplace.content.errors import ContentNotFound, InvalidBlock
from marketplace.content.importer import ImportOptions, build_directory, import_bytes, import_path
from marketplace.content.memory import MemoryBlocks
from marketplace.content.unpack import ChunkReader, unpack_car
from tests.fixtures.content import content, make_vector_tree


def _car(blocks: MemoryBlocks, root: Cid, skip: Cid | None = None) -> bytes:
    pairs = ((c, b) for c, b in dag.walk(blocks.get, root) if c != skip)
    return b"".join(car.write_car([root], pairs))


def _chunked(data: bytes, size: int = 7) -> ChunkReader:
    """As an HTTP body arrives: in pieces that split varints and sections."""
    return ChunkReader(data[i : i + size] for i in range(0, len(data), size))


def test_a_tree_comes_out_as_it_went_in(tmp_path: Path) -> None:
    tree = make_vector_tree(tmp_path / "src")
    blocks = MemoryBlocks()
    root = import_path(tree, ImportOptions(include_hidden=True), blocks).cid
    seen: list[tuple[int, int]] = []
    out = unpack_car(
        _chunked(_car(blocks, root)), str(root), tmp_path / "out", lambda d, t: seen.append((d, t))
    )
    assert str(import_path(out, ImportOptions(include_hidden=True)).cid) == str(root)
    files = [p for p in tree.rglob("*") if p.is_file()]
    assert seen[-1] == (len(files), len(files))


def test_a_single_file(tmp_path: Path) -> None:
    blocks = MemoryBlocks()
    data = content(700_000)
    root = import_bytes(data, ImportOptions(), blocks).cid
    unpack_car(io.BytesIO(_car(blocks, root)), str(root), tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == data


def test_a_missing_block_is_not_found(tmp_path: Path) -> None:
    blocks = MemoryBlocks()
    root = import_bytes(content(700_000), ImportOptions(), blocks).cid
    leaf = next(c for c, _ in dag.walk(blocks.get, root) if c != root)
    with pytest.raises(ContentNotFound):
        unpack_car(io.BytesIO(_car(blocks, root, skip=leaf)), str(root), tmp_path / "f")


def test_a_car_for_another_root_is_refused(tmp_path: Path) -> None:
    blocks = MemoryBlocks()
    root = import_bytes(b"one", ImportOptions(), blocks).cid
    other = import_bytes(b"two").cid
    with pytest.raises(InvalidBlock, match="roots"):
        unpack_car(io.BytesIO(_car(blocks, root)), str(other), tmp_path / "f")


def test_a_name_that_would_leave_the_directory_is_refused(tmp_path: Path) -> None:
    blocks = MemoryBlocks()
    evil = build_directory([("..", import_bytes(b"x", ImportOptions(), blocks))], sink=blocks)
    with pytest.raises(InvalidBlock, match="unsafe name"):
        unpack_car(io.BytesIO(_car(blocks, evil.cid)), str(evil.cid), tmp_path / "out")
    assert not (tmp_path / "x").exists()


def test_a_small_car_naming_a_huge_tree_is_bounded(tmp_path: Path) -> None:
    """One block linked many times: the CAR is small, the tree is not."""
    from marketplace.errors import PayloadTooLarge

    blocks = MemoryBlocks()
    leaf = import_bytes(content(1000), ImportOptions(), blocks)
    many = build_directory([(f"f{i}", leaf) for i in range(50)], sink=blocks)
    data = _car(blocks, many.cid)
    assert len(data) < 10_000
    with pytest.raises(PayloadTooLarge, match="files"):
        unpack_car(io.BytesIO(data), str(many.cid), tmp_path / "a", max_files=49)
    with pytest.raises(PayloadTooLarge, match="bytes"):
        unpack_car(io.BytesIO(data), str(many.cid), tmp_path / "b", max_bytes=20_000)
    unpack_car(io.BytesIO(data), str(many.cid), tmp_path / "c", max_files=50, max_bytes=50_000)
    assert len(list((tmp_path / "c").iterdir())) == 50
