"""Streaming receipt of a seed-000 dataset upload (multipart/form-data) to disk.

Why python-multipart's `MultipartParser` driven from `request.stream()` rather than
Starlette's `request.form()`: the form helper spools each file to a temporary file and
only then hands it over, so the dataset would be written twice and the file names would
need re-checking after the fact. Driving the parser ourselves writes each file part
straight to its final place in the staging tree, checks every name (`paths.py`) when the
part's headers arrive, and enforces the limits on the bytes as they come in: the body
size (`upload.max_bytes`, counted on the raw stream, whatever Content-Length says), the
number of files (`upload.max_files`) and the size of each text field
(`upload.max_json_bytes`). Memory stays at one network chunk plus the text fields.

With `stage=True` (dataset uploads) no file part is written as a file at all: each is
chunked, hashed and its blocks staged as it streams in (`marketplace.datasets.staged`),
and a part whose name ends in `.zip` is read as the dataset's archive, its entries staged
the same way as they stream in (`marketplace.datasets.archive_stream`): the dataset's
bytes are written once, in the blocks the store later takes over. Such an archive must be
the upload's only file (422 `INVALID_DATASET` as soon as a second file shows). Without
`stage`, a `.zip` part goes aside to `archives/` as a file of its own.
"""

from __future__ import annotations

import asyncio
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, cast

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from marketplace.content.staged import StagedBlocks
from marketplace.datasets.archive_stream import LOCAL as ZIP_ENTRY
from marketplace.datasets.archive_stream import ZipImport, entries_in
from marketplace.datasets.errors import (
    InvalidDataset,
    MalformedMultipart,
    UnsafeFilename,
    UnsupportedMediaType,
)
from marketplace.datasets.paths import UnsafePath, safe_relative_path
from marketplace.datasets.staged import PathCollision, StagedDataset, StagedWriter
from marketplace.errors import InvalidField, PayloadTooLarge
from node.config import UploadLimits

FILES_FIELD = "files"
MAX_TEXT_FIELDS = 32
# Parsing a chunk's small files takes about 85 us each; in a chunk of more than DENSE_PARTS
# files, the event loop serves other requests after at most YIELD_SECONDS of it, between
# slices of PARSE_SLICE bytes (issue 12: 2,048 labels in the last chunks of an upload held
# `GET /healthz` for 170-310 ms).
DENSE_PARTS = 32
PARSE_SLICE = 16 * 1024
YIELD_SECONDS = 0.005


@dataclass
class ReceivedUpload:
    """What arrived: the text fields, the staged file tree and any `.zip` parts."""

    fields: dict[str, str]
    tree: Path
    archives: list[tuple[str, Path]] = field(default_factory=list)  # (client name, path)
    file_count: int = 0  # file parts written to `tree` (or to `staged`)
    body_bytes: int = 0
    staged: StagedDataset | None = None  # with `stage=True`: the files, imported
    archive_name: str | None = None  # with `stage=True`: the `.zip` whose entries these are


class _Receiver:
    def __init__(self, workdir: Path, limits: UploadLimits, stage: bool) -> None:
        self.limits = limits
        self.tree = workdir / "tree"
        self.archive_dir = workdir / "archives"
        self.tree.mkdir(parents=True)
        self.archive_dir.mkdir()
        self.staged = StagedDataset(StagedBlocks(workdir / "blocks")) if stage else None
        self.writer: StagedWriter | None = None
        self.zip: ZipImport | None = None  # the archive part being imported
        self.archive_name: str | None = None
        self.fields: dict[str, str] = {}
        self.archives: list[tuple[str, Path]] = []
        self.file_parts = 0
        self.tree_files = 0
        self.ended = False
        self._reset()

    def _reset(self) -> None:
        self.headers: dict[str, bytes] = {}
        self._hname = bytearray()
        self._hvalue = bytearray()
        self.name: str | None = None
        self.text: bytearray | None = None
        self.sink: IO[bytes] | None = None
        self.discard = False

    # -- parser callbacks ------------------------------------------------------------
    def on_part_begin(self) -> None:
        self._close_sink()
        self._reset()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def on_header_end(self) -> None:
        self.headers[bytes(self._hname).decode("latin-1").strip().lower()] = bytes(self._hvalue)
        self._hname.clear()
        self._hvalue.clear()

    def on_headers_finished(self) -> None:
        disposition = self.headers.get("content-disposition")
        if disposition is None:
            raise MalformedMultipart("a multipart part has no Content-Disposition header")
        kind, options = parse_options_header(disposition)
        if kind != b"form-data" or b"name" not in options:
            raise MalformedMultipart("a multipart part is not named form-data")
        name = _utf8(options[b"name"], MalformedMultipart, "field name")
        self.name = name
        if b"filename" not in options:
            if name == FILES_FIELD:
                raise InvalidField(
                    "'files' parts must be files (with a filename), not text",
                    details={"field": FILES_FIELD},
                )
            if name in self.fields:
                raise InvalidField(f"form field {name!r} is repeated", details={"field": name})
            if len(self.fields) >= MAX_TEXT_FIELDS:
                raise InvalidField("too many form fields")
            self.text = bytearray()
            return
        if name != FILES_FIELD:
            raise InvalidField(
                f"files must be sent in the {FILES_FIELD!r} field, not {name[:64]!r}",
                details={"field": name[:64]},
            )
        filename = _utf8(options[b"filename"], UnsafeFilename, "file name")
        if not filename:  # a browser's empty file input
            self.discard = True
            return
        self.file_parts += 1
        if self.file_parts > self.limits.max_files:
            raise PayloadTooLarge(
                f"more than {self.limits.max_files} files in one upload",
                details={"limit": "max_files", "max_files": self.limits.max_files},
            )
        is_zip = filename.replace("\\", "/").rsplit("/", 1)[-1].lower().endswith(".zip")
        if self.staged is not None and (is_zip or self.archive_name is not None):
            if self.archive_name is not None or self.tree_files:
                raise InvalidDataset(
                    "a .zip upload must be the only file; send either one .zip or the "
                    "dataset's files",
                    details={"archives": [self.archive_name or filename][:10]},
                )
            self.archive_name = filename
            self.zip = ZipImport(
                self.staged,
                max_bytes=self.limits.max_bytes,
                max_files=self.limits.max_files,
                max_ratio=self.limits.max_compression_ratio,
            )
            return
        if is_zip:
            target = self.archive_dir / f"{len(self.archives)}.zip"
            self.archives.append((filename, target))
        else:
            try:
                rel = safe_relative_path(filename)
            except UnsafePath as exc:
                raise UnsafeFilename(
                    f"file name {filename[:200]!r}: {exc}", details={"filename": filename[:200]}
                ) from exc
            if rel is None:  # OS clutter such as .DS_Store
                self.discard = True
                return
            self.tree_files += 1
            if self.staged is not None:
                try:
                    self.writer = self.staged.open_file(rel)
                except PathCollision as exc:
                    raise UnsafeFilename(
                        f"file name {filename[:200]!r} repeats or collides with another file",
                        details={"filename": filename[:200]},
                    ) from exc
                return
            target = self.tree.joinpath(*PurePosixPath(rel).parts)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.sink = open(target, "xb")  # noqa: SIM115 - closed in on_part_end/close
        except (FileExistsError, IsADirectoryError, NotADirectoryError) as exc:
            raise UnsafeFilename(
                f"file name {filename[:200]!r} repeats or collides with another file",
                details={"filename": filename[:200]},
            ) from exc

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.zip is not None:
            self.zip.feed(memoryview(data)[start:end])
        elif self.writer is not None:
            self.writer.write(memoryview(data)[start:end])
        elif self.sink is not None:
            self.sink.write(memoryview(data)[start:end])
        elif self.text is not None:
            self.text += data[start:end]
            if len(self.text) > self.limits.max_json_bytes:
                raise PayloadTooLarge(
                    f"form field {self.name!r} is over {self.limits.max_json_bytes} bytes",
                    details={"limit": "max_json_bytes", "field": self.name},
                )

    def on_part_end(self) -> None:
        if self.text is not None and self.name is not None:
            self.fields[self.name] = _utf8(bytes(self.text), InvalidField, f"field {self.name}")
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.zip is not None:
            self.zip.finish()
            self.zip = None
        self._close_sink()
        self._reset()

    def on_end(self) -> None:
        self.ended = True

    def _close_sink(self) -> None:
        self.writer = None  # an unfinished staged file is dropped with the workdir
        self.zip = None
        if self.sink is not None:
            self.sink.close()
            self.sink = None

    def close(self) -> None:
        self._close_sink()

    def zip_entries_in(self, chunk: bytes) -> int:
        """How many zip entries `chunk` may begin: in the archive being imported, header
        to header past the bytes known to be data, first the current entry's
        (`ZipImport.data_ahead`), then each next one's (`entries_in`); before any file
        part, every local header signature (an archive may start in it); none once the
        upload has shown it is not one archive (a file part came, or the archive ended:
        more entries would be refused). Searching the 4-byte signature through every byte
        (189 us a 256 KiB chunk) was a fifth of the event loop's time on a stored zip's
        upload, and of the node's GIL samples on a many-files upload (py-spy)."""
        if self.zip is not None:
            return entries_in(chunk, self.zip.data_ahead())
        if self.staged is None or self.archive_name is not None or self.tree_files:
            return 0
        return chunk.count(ZIP_ENTRY)

    def callbacks(self) -> dict[str, Any]:
        return {
            name: getattr(self, name)
            for name in (
                "on_part_begin",
                "on_header_field",
                "on_header_value",
                "on_header_end",
                "on_headers_finished",
                "on_part_data",
                "on_part_end",
                "on_end",
            )
        }


def _utf8(raw: bytes, error: type[Exception], what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} is not valid UTF-8") from exc


async def receive_upload(
    request: Request, workdir: Path, limits: UploadLimits, *, stage: bool = False
) -> ReceivedUpload:
    """Stream the request's multipart body into `workdir` (which must not exist yet);
    with `stage`, import the files, or the entries of the one `.zip` part, into staged
    blocks as they arrive.

    Raises `UnsupportedMediaType` (415), `MalformedMultipart` (400), `UnsafeFilename`
    (400), `InvalidField` or `InvalidDataset` (422), `PayloadTooLarge` (413), or an
    archive's refusal (`archive_stream`) as soon as the stream shows the problem. The
    caller removes `workdir` whatever happens.
    """
    ctype, options = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data":
        raise UnsupportedMediaType("the upload must be multipart/form-data")
    boundary = options.get(b"boundary")
    if not boundary:
        raise MalformedMultipart("multipart/form-data without a boundary")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_bytes:
        raise PayloadTooLarge(
            f"upload over {limits.max_bytes} bytes",
            details={"limit": "max_bytes", "max_bytes": limits.max_bytes},
        )
    receiver = _Receiver(workdir, limits, stage)
    total = 0
    loop = asyncio.get_running_loop()
    yield_at = loop.time() + YIELD_SECONDS
    delimiter = b"\r\n--" + boundary
    staged = receiver.staged
    try:
        # the files' hashing and block writes run beside the parse (`StagedDataset`)
        with staged.pipelined() if staged is not None else nullcontext():
            try:
                parser = MultipartParser(boundary, cast(Any, receiver.callbacks()))
            except ValueError as exc:  # FormParserError is a ValueError
                raise MalformedMultipart(f"bad multipart boundary: {exc}") from exc
            async for chunk in request.stream():
                total += len(chunk)
                if total > limits.max_bytes:
                    raise PayloadTooLarge(
                        f"upload over {limits.max_bytes} bytes",
                        details={"limit": "max_bytes", "max_bytes": limits.max_bytes},
                    )
                # A network chunk may hold hundreds of small files (a dataset's labels, as
                # parts or as a zip's entries), each parsed and staged on the event loop:
                # such a chunk is parsed in slices, and the loop serves other requests
                # between them once one has run for a while. A chunk of a few files is
                # parsed whole (slicing costs a copy and a parser call a slice).
                # (the parts, and the entries of a zip, which is staged as it streams in)
                files = chunk.count(delimiter) + receiver.zip_entries_in(chunk)
                step = PARSE_SLICE if files > DENSE_PARTS else len(chunk)
                for at in range(0, len(chunk), step or 1):
                    try:
                        parser.write(chunk[at : at + step])
                    except FormParserError as exc:
                        raise MalformedMultipart(f"malformed multipart body: {exc}") from exc
                    if loop.time() >= yield_at:
                        await asyncio.sleep(0)
                        yield_at = loop.time() + YIELD_SECONDS
                if staged is not None:
                    await staged.room()
            if not receiver.ended:
                raise MalformedMultipart("the multipart body ends before its closing boundary")
            if staged is not None:  # the last chunks, off the event loop
                await run_in_threadpool(staged.drain)
    except ClientDisconnect as exc:
        raise MalformedMultipart("the client disconnected during the upload") from exc
    finally:
        receiver.close()
    return ReceivedUpload(
        fields=receiver.fields,
        tree=receiver.tree,
        archives=receiver.archives,
        file_count=receiver.tree_files,
        body_bytes=total,
        staged=receiver.staged,
        archive_name=receiver.archive_name,
    )
