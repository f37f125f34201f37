"""Property: the importer's root equals the CID recomputed from what a CAR round trip
carries (export, parse with verification, rebuild the file or tree, import again), for
random sizes, layouts and trees; plus CAR parsing refusals."""

from __future__ import annotations

import io
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketplace.content import car, dag
from marketplace.content.cid import Cid, parse_cid
from marketplace.content.errors import InvalidBlock
from marketplace.content.importer import ImportOptions, Node, import_bytes, import_path
from marketplace.content.memory import MemoryBlocks
from tests.fixtures.content import content

SMALL = dict(chunk_size=16, max_links=3)  # deep trees from small inputs
BOUNDARIES = [0, 1, 15, 16, 17, 48, 49, 144, 145, 432, 433, 1296, 1297]
OPTIONS = st.sampled_from([(0, None), (1, None), (1, False), (0, True)])


def car_round_trip(root: Node, blocks: MemoryBlocks) -> tuple[list[Cid], MemoryBlocks, int]:
    stream = io.BytesIO(b"".join(car.write_car([root.cid], dag.walk(blocks.get, root.cid))))
    roots, parsed = car.read_car(stream)
    back = MemoryBlocks()
    n = 0
    for cid, data in parsed:
        back.put(cid, (data,))
        n += 1
    return roots, back, n


def data_of(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@settings(max_examples=150, deadline=None)
@given(
    size=st.one_of(st.sampled_from(BOUNDARIES), st.integers(0, 3000)),
    seed=st.integers(0, 2**32),
    opts=OPTIONS,
)
def test_file_root_survives_car_round_trip(size: int, seed: int, opts: tuple) -> None:
    options = ImportOptions(cid_version=opts[0], raw_leaves=opts[1], **SMALL)
    data = data_of(size, seed)
    blocks = MemoryBlocks()
    root = import_bytes(data, options, blocks)
    roots, back, n = car_round_trip(root, blocks)
    assert roots == [root.cid]
    assert n == len(back) <= len(blocks)
    rebuilt = b"".join(dag.cat(back.get, roots[0]))
    assert rebuilt == data
    assert import_bytes(rebuilt, options).cid == root.cid


@pytest.mark.parametrize("size", [262144, 262145, 174 * 262144, 174 * 262144 + 1])
def test_real_layout_round_trip_across_levels(size: int) -> None:
    blocks = MemoryBlocks()
    data = content(size)
    root = import_bytes(data, ImportOptions(), blocks)
    roots, back, _ = car_round_trip(root, blocks)
    rebuilt = b"".join(dag.cat(back.get, roots[0]))
    assert rebuilt == data and import_bytes(rebuilt).cid == root.cid


NAMES = st.text(alphabet=st.sampled_from("abcXYZ_-.é0 "), min_size=1, max_size=6).filter(
    lambda n: n not in (".", "..")
)
TREES = st.recursive(
    st.binary(max_size=200),
    lambda children: st.dictionaries(NAMES, children, max_size=4),
    max_leaves=12,
)


def write_tree(path: Path, tree: bytes | dict) -> None:
    if isinstance(tree, bytes):
        path.write_bytes(tree)
        return
    path.mkdir()
    for name, sub in tree.items():
        write_tree(path / name, sub)


def rebuild(get, cid: Cid, path: Path) -> None:  # type: ignore[no-untyped-def]
    if dag.stat(get, cid).is_dir:
        path.mkdir()
        for e in dag.ls(get, cid):
            rebuild(get, parse_cid(e.cid), path / e.name)
    else:
        path.write_bytes(b"".join(dag.cat(get, cid)))


@settings(max_examples=40, deadline=None)
@given(tree=st.dictionaries(NAMES, TREES, max_size=5), opts=OPTIONS)
def test_tree_root_survives_car_round_trip(tree: dict, opts: tuple) -> None:
    options = ImportOptions(cid_version=opts[0], raw_leaves=opts[1], include_hidden=True, **SMALL)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        write_tree(src, tree)
        blocks = MemoryBlocks()
        root = import_path(src, options, blocks)
        roots, back, _ = car_round_trip(root, blocks)
        out = Path(tmp) / "out"
        rebuild(back.get, roots[0], out)
        assert import_path(out, options).cid == root.cid


def test_car_with_a_tampered_block_is_refused() -> None:
    blocks = MemoryBlocks()
    root = import_bytes(b"x" * 100, ImportOptions(**SMALL), blocks)
    raw = bytearray(b"".join(car.write_car([root.cid], dag.walk(blocks.get, root.cid))))
    raw[-1] ^= 1
    roots, parsed = car.read_car(io.BytesIO(bytes(raw)))
    with pytest.raises(InvalidBlock):
        list(parsed)


@pytest.mark.parametrize("junk", [b"", b"\x05abc", b"\x01\xa0", b"\xff" * 12])
def test_garbage_is_not_a_car(junk: bytes) -> None:
    with pytest.raises(InvalidBlock):
        roots, blocks = car.read_car(io.BytesIO(junk))
        list(blocks)
