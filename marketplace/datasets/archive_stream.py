"""A `.zip` dataset imported as its bytes stream in: each entry goes into the staged
dataset (`staged.StagedDataset`) while it arrives, so an upload's archive is neither
written to disk nor read back (issue 12: one write of the bytes, one hash).

The archive is read front to back, entry by local header, under `archive.EntryRules`
(names, duplicates, encryption, methods, ratios, counts, sizes). What only the central
directory says, which comes last, is checked by `finish`:
- it lists the same entries in the same order as the local headers did, each with the
  same name, method, CRC, sizes and offset, and its end records agree with it: an archive
  whose two views differ is refused (`INVALID_ARCHIVE`), so no archive is read one way
  here and another way by a tool that reads its central directory;
- the Unix modes, which only it carries: no symbolic links, no devices (`UNSAFE_ARCHIVE`).

Entries behind a data descriptor (general purpose flag bit 3: CRC and sizes after the
data, as streaming writers emit them): a deflated one ends where its deflate stream ends;
a stored one where a descriptor follows whose signature, CRC and sizes match the bytes
read so far (the central directory then confirms where it ended: a lookalike in the data
with the very CRC and length of the bytes before it would be taken for the descriptor, and
the archive refused). A stored entry with a descriptor that has no signature cannot be
found in a stream: it is refused as `INVALID_ARCHIVE`, like bytes before the first entry
(a self-extracting archive).

Every byte is counted as it inflates (the entry's declared size, `max_bytes`, the ratio
of inflated to compressed bytes), so a bomb is refused while it expands. A refusal may
come after earlier entries were staged: the staging folder is the caller's and goes with
the request, and no store sees a block before the whole upload is accepted.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from marketplace.content.nodes import Buffer
from marketplace.datasets.archive import EntryRules, entry_mode
from marketplace.datasets.errors import ArchiveTooLarge, InvalidArchive, UnsafeArchive
from marketplace.datasets.staged import PathCollision, StagedDataset, StagedWriter

LOCAL = b"PK\x03\x04"
CENTRAL = b"PK\x01\x02"
DESCRIPTOR = b"PK\x07\x08"
END = b"PK\x05\x06"
END64 = b"PK\x06\x06"
END64_LOCATOR = b"PK\x06\x07"
_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes
_CENTRAL = struct.Struct("<4sBBBBHHHHIIIHHHHHII")  # 46 bytes
_END = struct.Struct("<4sHHHHIIH")  # 22 bytes
_END64 = struct.Struct("<4sQHHIIQQQQ")  # 56 bytes
U32 = 0xFFFFFFFF
FLAG_ENCRYPTED = 0x1
FLAG_DESCRIPTOR = 0x8
FLAG_UTF8 = 0x800
STORED, DEFLATED = 0, 8
INFLATE_STEP = 1024 * 1024  # inflated bytes per call, whatever the compressed piece holds


def entries_in(chunk: bytes, start: int = 0) -> int:
    """How many entries begin in `chunk` from `start` (their local headers), to pace the
    parse of a chunk, not to read the archive: header to header, past the data of each
    whose header states its size (as `ZipImport` reads it), so those bytes are never
    searched; from the first place that holds no such header (a header cut by the chunk's
    end, one behind a data descriptor or with Zip64 sizes, the central directory, bytes
    of unknown meaning) every byte is searched for the signature."""
    count = 0
    at = start
    while at + _LOCAL.size <= len(chunk) and chunk.startswith(LOCAL, at):
        fields = _LOCAL.unpack_from(chunk, at)
        flags, compressed, name_len, extra_len = fields[2], fields[7], fields[9], fields[10]
        if flags & FLAG_DESCRIPTOR or compressed == U32:
            break
        count += 1
        at += _LOCAL.size + name_len + extra_len + compressed
    return count + chunk.count(LOCAL, at)


@dataclass
class _Entry:
    name: bytes
    offset: int
    flags: int
    method: int
    zip64: bool
    crc: int | None  # None: in the data descriptor
    compressed: int | None
    size: int | None

    @property
    def label(self) -> str:
        """The entry's name as messages quote it."""
        return _name(self.name, self.flags)[:200]


def _name(raw: bytes, flags: int) -> str:
    return raw.decode("utf-8" if flags & FLAG_UTF8 else "cp437", errors="replace")


def _zip64_field(extra: bytes) -> bytes | None:
    """The body of the ZIP64 extra field (tag 1) among `extra`'s fields; None if absent."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            return extra[pos + 4 : pos + 4 + size]
        pos += 4 + size
    return None


def _zip64_sizes(extra: bytes, wanted: list[bool]) -> list[int | None]:
    """The 8-byte values of the ZIP64 extra field, in order, for each `wanted` (a 32-bit
    field set to 0xFFFFFFFF); None for the others."""
    body = _zip64_field(extra)
    if body is None:
        raise InvalidArchive("a ZIP64 size has no ZIP64 extra field")
    values: list[int | None] = []
    at = 0
    for want in wanted:
        if want:
            if at + 8 > len(body):
                raise InvalidArchive("a ZIP64 extra field is too short")
            values.append(struct.unpack_from("<Q", body, at)[0])
            at += 8
        else:
            values.append(None)
    return values


class ZipImport:
    """Feed an archive's bytes in any pieces (`feed`), then `finish`; the files land in
    `dest`. Raises a `MarketplaceError` as soon as the bytes show the problem."""

    def __init__(
        self, dest: StagedDataset, *, max_bytes: int, max_files: int, max_ratio: float
    ) -> None:
        self.dest = dest
        self.rules = EntryRules(max_bytes=max_bytes, max_files=max_files, max_ratio=max_ratio)
        self.max_entries = max_files * 2 + 16  # folder entries count too, not unboundedly
        self.max_tail = max(1 << 20, self.max_entries * 1024)  # the central directory
        self.entries: list[_Entry] = []
        self.written = 0  # inflated bytes of every entry so far
        self._buf = bytearray()  # bytes of a header not complete yet
        self._offset = 0  # archive offset of the next byte `feed` has not consumed
        self._state = self._header
        self._tail = bytearray()
        self._tail_offset = 0
        self._entry: _Entry | None = None
        self._writer: StagedWriter | None = None
        self._crc = 0
        self._in = 0  # compressed bytes of the entry so far
        self._out = 0  # inflated bytes of the entry so far
        self._inflate: zlib._Decompress | None = None

    # -- feeding ------------------------------------------------------------------
    def feed(self, data: Buffer) -> None:
        view = memoryview(data)
        try:
            while len(view):
                view = self._state(view)
        except zlib.error as exc:
            entry = self._entry
            name = entry.label if entry else "?"
            raise InvalidArchive(f"corrupt archive entry {name!r}: {exc}") from exc

    def _take(self, view: memoryview, n: int) -> tuple[bool, memoryview]:
        """Gather `n` header bytes into `_buf`; whether they are all there, and the rest."""
        need = n - len(self._buf)
        if need > 0:
            self._buf += view[:need]
            view = view[need:]
        return len(self._buf) >= n, view

    def _header(self, view: memoryview) -> memoryview:
        ok, view = self._take(view, 4)
        if not ok:
            return view
        sig = bytes(self._buf[:4])
        if sig in (CENTRAL, END, END64):
            self._tail_offset = self._offset
            self._tail += self._buf
            self._buf.clear()
            self._state = self._central
            return view
        if sig != LOCAL:
            what = "bytes before its first entry" if not self.entries else "an unknown record"
            raise InvalidArchive(f"not a zip archive that can be read as it streams: {what}")
        ok, view = self._take(view, _LOCAL.size)
        if not ok:
            return view
        fields = _LOCAL.unpack_from(self._buf)
        name_len, extra_len = fields[9], fields[10]
        ok, view = self._take(view, _LOCAL.size + name_len + extra_len)
        if not ok:
            return view
        self._open_entry(fields, bytes(self._buf))
        self._offset += len(self._buf)
        self._buf.clear()
        return view

    def _open_entry(self, fields: tuple, header: bytes) -> None:
        _, _, flags, method, _, _, crc, compressed, size, name_len, extra_len = fields
        raw_name = header[_LOCAL.size : _LOCAL.size + name_len]
        extra = header[_LOCAL.size + name_len :]
        if len(self.entries) >= self.max_entries:
            raise ArchiveTooLarge(
                f"archive has more than {self.max_entries} entries "
                f"(limit {self.rules.max_files} files)",
                details={"limit": "max_files", "max_files": self.rules.max_files},
            )
        zip64 = _zip64_field(extra) is not None
        if compressed == U32 or size == U32:
            big_size, big_compressed = _zip64_sizes(extra, [size == U32, compressed == U32])
            size = size if big_size is None else big_size
            compressed = compressed if big_compressed is None else big_compressed
        descriptor = bool(flags & FLAG_DESCRIPTOR)
        entry = _Entry(
            name=raw_name,
            offset=self._offset,
            flags=flags,
            method=method,
            zip64=zip64,
            crc=None if descriptor else crc,
            compressed=None if descriptor and not compressed else compressed,
            size=None if descriptor and not size else size,
        )
        if descriptor and method == STORED and entry.compressed is not None:
            entry.size = entry.compressed
        name = _name(raw_name, flags)
        rel = self.rules.check(
            name,
            mode=0,  # only the central directory has it: checked by `finish`
            flag_bits=flags,
            method=method,
            file_size=entry.size,
            compress_size=entry.compressed,
        )
        self.entries.append(entry)
        self._entry = entry
        try:
            self._writer = self.dest.open_file(rel) if rel is not None else None
        except PathCollision as exc:
            raise UnsafeArchive(f"archive entry {name[:200]!r} collides") from exc
        self._crc = self._in = self._out = 0
        if method == DEFLATED:
            self._inflate = zlib.decompressobj(-15)
            self._state = self._deflated
        elif entry.compressed is None:
            self._state = self._stored_scan
        else:
            self._state = self._stored

    def _emit(self, data: Buffer) -> None:
        """Inflated bytes of the current entry: counted, checked, imported."""
        entry = self._entry
        assert entry is not None
        n = len(data)
        self._out += n
        self.written += n
        if entry.size is not None and self._out > entry.size:
            raise UnsafeArchive(f"archive entry {entry.label!r} is larger than declared")
        self.rules.check_total(self.written)
        self._crc = zlib.crc32(data, self._crc)
        if self._writer is not None:
            self._writer.write(data)

    def data_ahead(self) -> int:
        """How many of the next bytes are known to be the current entry's data (no header
        among them): its declared size less what came of it; 0 where that is unknown."""
        entry = self._entry
        if self._state in (self._stored, self._deflated) and entry and entry.compressed:
            return entry.compressed - self._in
        return 0

    def _stored(self, view: memoryview) -> memoryview:
        entry = self._entry
        assert entry is not None and entry.compressed is not None
        piece = view[: entry.compressed - self._in]
        self._in += len(piece)
        self._offset += len(piece)
        self._emit(piece)
        if self._in == entry.compressed:
            self._end_data()
        return view[len(piece) :]

    def _deflated(self, view: memoryview) -> memoryview:
        entry, inflate = self._entry, self._inflate
        assert entry is not None and inflate is not None
        piece = view if entry.compressed is None else view[: entry.compressed - self._in]
        rest = view[len(piece) :]
        name = entry.label
        data = inflate.decompress(piece, INFLATE_STEP)
        while True:
            self._emit(data)
            # at most all of `piece` went in so far: past the ratio even so, it is a bomb
            self.rules.check_ratio(name, self._out, self._in + len(piece))
            if not inflate.unconsumed_tail or inflate.eof:
                break
            data = inflate.decompress(inflate.unconsumed_tail, INFLATE_STEP)
        used = len(piece) - len(inflate.unused_data) - len(inflate.unconsumed_tail)
        self._in += used
        self._offset += used
        self.rules.check_ratio(name, self._out, self._in)
        if inflate.eof:
            after = bytes(inflate.unused_data) + bytes(rest)
            self._inflate = None
            if entry.compressed is not None and self._in != entry.compressed:
                raise InvalidArchive(f"archive entry {entry.label!r} is truncated")
            self._end_data()
            return memoryview(after)
        if entry.compressed is not None and self._in == entry.compressed:
            raise InvalidArchive(f"archive entry {entry.label!r} is truncated")
        return rest

    def _stored_scan(self, view: memoryview) -> memoryview:
        """A stored entry of unknown size: its data ends where a matching descriptor
        (signature, CRC, sizes) starts. The last bytes are held back until what follows
        them shows whether a descriptor starts there."""
        entry = self._entry
        assert entry is not None
        room = 24 if entry.zip64 else 16
        window = bytes(self._buf) + bytes(view)
        self._buf.clear()
        at = 0
        while True:
            hit = window.find(DESCRIPTOR, at)
            if hit < 0:
                keep = min(len(window), 3)  # a signature split across pieces
                self._stored_bytes(window[: len(window) - keep])
                self._buf += window[len(window) - keep :]
                return memoryview(b"")
            self._stored_bytes(window[:hit])
            window, at = window[hit:], 0
            if len(window) < room:
                self._buf += window  # wait for the rest of the candidate
                return memoryview(b"")
            crc, compressed, size = struct.unpack_from("<IQQ" if entry.zip64 else "<III", window, 4)
            if crc == self._crc and compressed == self._in and size == self._in:
                entry.crc, entry.compressed, entry.size = crc, compressed, size
                self._offset += room
                self._close_entry()
                return memoryview(window[room:])
            at = 1  # those four bytes are data

    def _stored_bytes(self, data: bytes) -> None:
        if data:
            self._in += len(data)
            self._offset += len(data)
            self._emit(data)

    def _end_data(self) -> None:
        entry = self._entry
        assert entry is not None
        if entry.flags & FLAG_DESCRIPTOR:
            self._state = self._descriptor
        else:
            self._close_entry()

    def _descriptor(self, view: memoryview) -> memoryview:
        entry = self._entry
        assert entry is not None
        ok, view = self._take(view, 4)
        if not ok:
            return view
        signed = bytes(self._buf[:4]) == DESCRIPTOR
        size = (4 if signed else 0) + (20 if entry.zip64 else 12)
        ok, view = self._take(view, size)
        if not ok:
            return view
        crc, compressed, inflated = struct.unpack_from(
            "<IQQ" if entry.zip64 else "<III", self._buf, 4 if signed else 0
        )
        if compressed != self._in or inflated != self._out:
            raise InvalidArchive(
                f"archive entry {entry.label!r}: its data descriptor does not match its data"
            )
        entry.crc, entry.compressed, entry.size = crc, compressed, inflated
        self._offset += size
        self._buf.clear()
        self._close_entry()
        return view

    def _close_entry(self) -> None:
        entry = self._entry
        assert entry is not None
        label = entry.label
        if entry.size is not None and self._out != entry.size:
            raise InvalidArchive(f"archive entry {label!r} is truncated")
        if entry.crc != self._crc:
            raise InvalidArchive(f"archive entry {label!r} fails its CRC check")
        entry.compressed, entry.size = self._in, self._out
        if self._writer is not None:
            self._writer.close()
        self._writer = None
        self._entry = None
        self._state = self._header

    def _central(self, view: memoryview) -> memoryview:
        if len(self._tail) + len(view) > self.max_tail:
            raise InvalidArchive("the archive's central directory is too large")
        self._tail += view
        return memoryview(b"")

    # -- the end ---------------------------------------------------------------------
    def finish(self) -> int:
        """Check the central directory against what was read; return the files imported."""
        if self._state != self._central:
            if self._state == self._header and not self.entries and not self._buf:
                raise InvalidArchive("not a zip archive: it is empty")
            raise InvalidArchive("the archive ends before its central directory")
        tail, pos = bytes(self._tail), 0
        for entry in self.entries:
            if tail[pos : pos + 4] != CENTRAL or len(tail) < pos + _CENTRAL.size:
                raise InvalidArchive("the central directory lists fewer entries than the archive")
            pos = self._check_central(entry, tail, pos)
        directory_size = pos
        if tail[pos : pos + 4] == CENTRAL:
            raise InvalidArchive("the central directory lists entries the archive lacks")
        count, size, offset = len(self.entries), directory_size, self._tail_offset
        if tail[pos : pos + 4] == END64:
            if len(tail) < pos + _END64.size:
                raise InvalidArchive("the archive's ZIP64 end record is cut short")
            end64 = _END64.unpack_from(tail, pos)
            if end64[7] != count or end64[8] != size or end64[9] != offset:
                raise InvalidArchive("the archive's ZIP64 end record disagrees with its entries")
            pos += 12 + end64[1]
            if tail[pos : pos + 4] != END64_LOCATOR:
                raise InvalidArchive("the archive's ZIP64 end record has no locator")
            pos += 20
            count = size = offset = -1  # the plain end record may say 0xFFFF... now
        if tail[pos : pos + 4] != END or len(tail) < pos + _END.size:
            raise InvalidArchive("the archive has no end of central directory record")
        _, _, _, _, total, cd_size, cd_offset, comment = _END.unpack_from(tail, pos)
        if count >= 0 and (total != count or cd_size != size or cd_offset != offset):
            raise InvalidArchive("the archive's end record disagrees with its entries")
        if pos + _END.size + comment != len(tail):
            raise InvalidArchive("bytes follow the archive's end record")
        return self.rules.files

    def _check_central(self, entry: _Entry, tail: bytes, pos: int) -> int:
        fields = _CENTRAL.unpack_from(tail, pos)
        (_, _, system, _, _, flags, method, _, _, crc, compressed, size) = fields[:12]
        name_len, extra_len, comment_len, _, _, external, offset = fields[12:]
        start = pos + _CENTRAL.size
        raw_name = tail[start : start + name_len]
        extra = tail[start + name_len : start + name_len + extra_len]
        wanted = [size == U32, compressed == U32, offset == U32]
        big = _zip64_sizes(extra, wanted) if any(wanted) else [None, None, None]
        size = size if big[0] is None else big[0]
        compressed = compressed if big[1] is None else big[1]
        offset = offset if big[2] is None else big[2]
        label = _name(raw_name, flags)
        if (
            raw_name != entry.name
            or method != entry.method
            or crc != entry.crc
            or compressed != entry.compressed
            or size != entry.size
            or offset != entry.offset
            or (flags ^ entry.flags) & FLAG_ENCRYPTED
        ):
            raise InvalidArchive(
                f"archive entry {label[:200]!r}: the central directory disagrees with its "
                "local header"
            )
        self.rules.check_mode(label, entry_mode(system, external))
        return start + name_len + extra_len + comment_len
