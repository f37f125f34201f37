"""A dataset imported as it arrives: each file is chunked and hashed the moment its bytes
come in (the same DAG as `ipfs add`), its blocks staged aside (`StagedBlocks`), and only
its path, size, first bytes and DAG root are kept. No file tree is written.

The upload checks (`layout.validate_dataset`, `layout.dataset_root`) read the staged
dataset through `StagedPath`, a read-only path over this listing: folders exist as the
parents of files (as in a zip extraction), an image's header is the kept first bytes,
and a label file is read back from its staged blocks. Once the checks pass, the folder's
directory blocks are built (`import_dir`, Kubo's order and sharding) and the store takes
the staged blocks over. One write of the bytes, one hash.

Inside `pipelined()`, the hashing runs in a thread of its own (a `Stage`), in the order
the chunks came, and the block files are written by another (`StagedBlocks.written_
behind`), while the caller goes on reading the next bytes: hashing and writes release
the GIL, so the upload's parse, its hashing and its writes overlap instead of taking
turns (issue 12's profile of a 256 MiB upload: the event loop spent 0.27 s hashing and
0.55 s creating and writing block files, all of it in line with the parse; with one
thread for both, that thread was the bound). The caller does not wait on the hashing
thread; an async caller yields (`room`) while more than `PIPELINE_BYTES` wait for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from marketplace.content import dag
from marketplace.content.importer import FileBuilder, build_directory
from marketplace.content.nodes import Buffer, ImportOptions, Node
from marketplace.content.staged import Stage, StagedBlocks, running_stage

HEAD_BYTES = 64  # enough for every header check (`layout.image_type` reads 16)
PIPELINE_BYTES = 8 * 1024 * 1024  # chunks waiting to be hashed, past which `room` waits
_ROOT = PurePosixPath()


class PathCollision(ValueError):
    """A file repeats an earlier one, or a file and a folder share a path."""


@dataclass(frozen=True)
class StagedFile:
    node: Node
    size: int
    head: bytes


class StagedWriter:
    """One file being received: `write` pieces of any size, then `close`."""

    def __init__(self, dataset: StagedDataset, rel: PurePosixPath) -> None:
        self._dataset = dataset
        self._rel = rel
        self._builder = FileBuilder(dataset.options, dataset.blocks)
        self._size = dataset.options.chunk_size
        self._pending = bytearray()
        self._head = b""

    def write(self, data: Buffer) -> None:
        """Take `data`'s bytes. In a pipelined dataset `data` may be read after the call
        returns, unless it is an immutable `bytes`: other buffers are copied."""
        mv = memoryview(data)
        if len(self._head) < HEAD_BYTES:
            self._head += bytes(mv[: HEAD_BYTES - len(self._head)])
        size = self._size
        if not self._pending and len(mv) >= size:
            full = len(mv) - len(mv) % size
            owned = isinstance(mv.obj, bytes)
            for off in range(0, full, size):
                piece = mv[off : off + size]
                self._dataset.run(self._builder.write_chunk, piece if owned else bytes(piece))
            mv = mv[full:]
        if not len(mv):
            return
        self._pending += mv
        if len(self._pending) >= size:
            view = memoryview(self._pending)
            full = len(view) - len(view) % size
            for off in range(0, full, size):
                self._dataset.run(self._builder.write_chunk, bytes(view[off : off + size]))
            view.release()
            del self._pending[:full]

    def close(self) -> None:
        """End the file; it is listed in `files` once its blocks are written (at once,
        unless the dataset is pipelined: then when it is drained)."""
        if self._pending:
            self._dataset.run(self._builder.write_chunk, bytes(self._pending))
            self._pending = bytearray()
        self._dataset.run(self._finish)

    def _finish(self) -> None:
        node = self._builder.finish()
        self._dataset.files[self._rel] = StagedFile(node, self._builder.size, self._head)


class StagedDataset:
    """The listing of a staged upload: files by relative path, the folders above them."""

    def __init__(self, blocks: StagedBlocks, options: ImportOptions = ImportOptions()) -> None:
        self.blocks = blocks
        self.options = options
        self.files: dict[PurePosixPath, StagedFile] = {}
        self._paths: set[PurePosixPath] = set()  # files opened, finished or not
        self.children: dict[PurePosixPath, set[str]] = {_ROOT: set()}
        self._stage: Stage | None = None

    @contextmanager
    def pipelined(self) -> Iterator[None]:
        """Hash and write the files' chunks in a thread of their own inside this block
        (see the module's docstring); every file closed inside is in `files` when it
        ends without an error. On an error the chunks not yet written are dropped."""
        if self._stage is not None:
            yield
            return
        try:
            with (
                self.blocks.written_behind(),
                running_stage(PIPELINE_BYTES, "dcm-stage") as self._stage,
            ):
                yield
        finally:
            self._stage = None

    def run(self, fn: Callable[..., Any], *args: Any) -> None:
        """`fn(*args)` now, or in the pipeline's thread after what was submitted before."""
        if self._stage is None:
            fn(*args)
        else:  # never waits: an async caller must not block its event loop (see `room`)
            self._stage.submit(fn, *args, nbytes=sum(len(a) for a in args), wait=False)

    async def room(self) -> None:
        """For an async caller: wait, without blocking its event loop, while more than
        `PIPELINE_BYTES` wait to be hashed (`Stage.room`)."""
        if self._stage is not None:
            await self._stage.room()

    def drain(self) -> None:
        """Wait until every chunk submitted so far is written (raising what failed)."""
        if self._stage is not None:
            self._stage.drain()
            self.blocks.drain()

    def open_file(self, rel: PurePosixPath) -> StagedWriter:
        """Start the file `rel` (relative, already checked safe); `PathCollision` if that
        path was given before or a file and a folder would share a path."""
        if rel in self._paths or rel in self.children:
            raise PathCollision(f"{rel} repeats or collides with another file")
        folder = rel.parent
        if folder in self.children:  # a folder seen before: its way up is checked and linked
            way_up = [folder]
        else:
            way_up = [p for p in rel.parents if p != _ROOT]
            if any(p in self._paths for p in way_up):
                raise PathCollision(f"{rel} is inside a file")
            way_up.append(_ROOT)
        self._paths.add(rel)
        child = rel
        for parent in way_up:
            self.children.setdefault(parent, set()).add(child.name)
            child = parent
        return StagedWriter(self, rel)

    @property
    def root(self) -> StagedPath:
        return StagedPath(self, _ROOT)

    def is_empty(self) -> bool:
        return not self.files

    def read(self, rel: PurePosixPath) -> bytes:
        """A staged file's bytes, read back from its blocks (verified)."""
        return b"".join(dag.cat(self.blocks.get, self.files[rel].node.cid))

    def import_dir(self, rel: PurePosixPath = _ROOT) -> Node:
        """Build the directory blocks of the folder `rel` and everything under it, as
        `ipfs add -r` of the same tree would (hidden names are never staged); return the
        folder's root."""
        entries = []
        for name in self.children.get(rel, ()):
            path = rel / name
            if path in self.children:
                entries.append((name, self.import_dir(path)))
            else:
                entries.append((name, self.files[path].node))
        return build_directory(entries, self.options, self.blocks)


class StagedPath:
    """A read-only path into a `StagedDataset`, with the part of `pathlib.Path` the
    layout checks use."""

    def __init__(self, dataset: StagedDataset, rel: PurePosixPath) -> None:
        self.dataset = dataset
        self.rel = rel

    def __truediv__(self, other: str | PurePosixPath) -> StagedPath:
        return StagedPath(self.dataset, self.rel / other)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, StagedPath)
            and other.dataset is self.dataset
            and other.rel == self.rel
        )

    def __hash__(self) -> int:
        return hash(self.rel)

    def __repr__(self) -> str:
        return f"StagedPath({self.rel.as_posix()!r})"

    @property
    def name(self) -> str:
        return self.rel.name

    @property
    def suffix(self) -> str:
        return self.rel.suffix

    @property
    def stem(self) -> str:
        return self.rel.stem

    def is_dir(self) -> bool:
        return self.rel in self.dataset.children

    def exists(self) -> bool:
        return self.is_dir() or self.is_file()

    def is_file(self) -> bool:
        return self.rel in self.dataset.files

    def is_symlink(self) -> bool:
        return False

    def iterdir(self) -> Iterator[StagedPath]:
        for name in sorted(self.dataset.children.get(self.rel, ())):
            yield self / name

    def relative_to(self, other: StagedPath) -> PurePosixPath:
        return self.rel.relative_to(other.rel)

    def list_files(self) -> dict[PurePosixPath, int]:
        """Every file under this folder: path relative to it -> size, in `os.walk`'s
        order over a real folder (a folder's files by name, then its folders by name)."""
        out: dict[PurePosixPath, int] = {}
        children, files = self.dataset.children, self.dataset.files

        def walk(folder: PurePosixPath) -> None:
            names = sorted(children.get(folder, ()))
            for name in names:
                if folder / name in files:
                    out[(folder / name).relative_to(self.rel)] = files[folder / name].size
            for name in names:
                if folder / name in children:
                    walk(folder / name)

        walk(self.rel)
        return out

    def read_head(self, n: int) -> bytes:
        staged = self.dataset.files[self.rel]
        if n <= len(staged.head) or staged.size <= len(staged.head):
            return staged.head[:n]
        return self.read_bytes()[:n]

    def read_bytes(self) -> bytes:
        return self.dataset.read(self.rel)
