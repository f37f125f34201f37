"""Unpacking a UnixFS DAG that arrives as one CAR stream (`dag/export`) into files.

One request instead of one `ls` per directory and one `cat` per file: for a tree of
thousands of small files that is the difference between seconds and minutes. Every block
is verified against its CID as it is read (`car.read_car`), and the tree is written by
walking the DAG from the requested root, so what lands on disk is exactly the DAG that
CID names; a block the CAR lacks is `ContentNotFound`. Blocks are spilled to a temporary
directory while the CAR streams, so memory stays small whatever the tree's size.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from marketplace.content import car, dag
from marketplace.content.cid import Cid, parse_cid
from marketplace.content.errors import ContentNotFound, CorruptBlock, InvalidBlock
from marketplace.errors import PayloadTooLarge


class _SpilledBlocks:
    """Blocks on local disk, one file per multihash, verified again on read."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, cid: Cid, data: bytes) -> None:
        (self.root / cid.multihash.hex()).write_bytes(data)

    def get(self, cid: Cid) -> bytes:
        try:
            data = (self.root / cid.multihash.hex()).read_bytes()
        except FileNotFoundError:
            raise ContentNotFound(f"block {cid} is not in the CAR") from None
        if not cid.verify(data):
            raise CorruptBlock(f"block {cid} changed on local disk")
        return data


class ChunkReader:
    """A binary stream over an iterator of byte chunks (an HTTP body), for `read_car`."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buf = bytearray()

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buf) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf += chunk
        if size < 0:
            size = len(self._buf)
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out


def _safe_name(name: str, parent: Cid) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise InvalidBlock(f"unsafe name {name!r} in directory {parent}")
    return name


def unpack_car(
    stream: BinaryIO | ChunkReader,
    root: str,
    out: Path,
    on_file: Callable[[int, int], None] | None = None,
    *,
    max_files: int | None = None,
    max_bytes: int | None = None,
) -> Path:
    """Write the file or directory `root` from a CAR stream to `out` (directories are
    created as needed, files written over). `on_file(done, total)` is called after each
    file. `max_files` and `max_bytes` bound what is written (PayloadTooLarge past them,
    checked before writing for the file count): a small CAR can name a huge tree, one
    block linked many times. Returns `out`."""
    want = parse_cid(root)
    with tempfile.TemporaryDirectory(prefix="dcm-car-") as tmp:
        blocks = _SpilledBlocks(Path(tmp))
        roots, stream_blocks = car.read_car(stream)  # type: ignore[arg-type]
        if not any(r.multihash == want.multihash for r in roots):
            raise InvalidBlock(f"the CAR's roots do not include {root}")
        for cid, data in stream_blocks:
            blocks.put(cid, data)
        get = blocks.get

        def files_under(cid: Cid) -> int:
            if not dag.stat(get, cid).is_dir:
                return 1
            return sum(files_under(child) for _, child, _ in dag.dir_links(get, cid, get(cid)))

        total = files_under(want)
        if max_files is not None and total > max_files:
            raise PayloadTooLarge(f"{root} holds {total} files, more than {max_files}")
        done = [0]
        written = [0]

        def write(cid: Cid, dest: Path) -> None:
            if dag.stat(get, cid).is_dir:
                dest.mkdir(parents=True, exist_ok=True)
                for name, child, _ in dag.dir_links(get, cid, get(cid)):
                    write(child, dest / _safe_name(name, cid))
                return
            with open(dest, "wb") as f:
                for chunk in dag.cat(get, cid):
                    written[0] += len(chunk)
                    if max_bytes is not None and written[0] > max_bytes:
                        raise PayloadTooLarge(f"{root} holds more than {max_bytes} bytes")
                    f.write(chunk)
            done[0] += 1
            if on_file is not None:
                on_file(done[0], total)

        write(want, out)
    return out
