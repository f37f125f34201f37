"""A deterministic zip, streamed: the same tree always gives the same bytes.

Used by `GET /jobs/get-dataset/{id}` to serve a dataset straight from the content store.
Fixed choices make the output a function of the tree alone:
- entries in the order given (the store walk is depth-first, names sorted as UnixFS sorts
  them), each folder as its own `name/` entry before its contents;
- every entry STORED (images do not compress), timestamp 1980-01-01 00:00, version made
  by Unix 3.0, mode 0644 for files and 0755 for folders, the UTF-8 name flag always set,
  no comments, no extra fields except ZIP64 ones;
- ZIP64 fields only where a size, an offset or the entry count needs them (so small
  archives are plain zip that every tool reads).
Sizes and CRCs sit in each local header (no data descriptors), which streaming readers
prefer; to know a CRC before the header, a file up to `buffer_limit` bytes is read once
into memory, and a bigger one is read twice (once for its CRC, once to send). The exact
length is known before the first byte (`content_length`). If a source yields other bytes
than its declared size, or different bytes the second time, iteration raises
`ZipSourceChanged` rather than emit a corrupt archive.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from marketplace.content.store import ContentStore

DOS_DATE_1980_01_01 = (0 << 9) | (1 << 5) | 1
DOS_TIME_MIDNIGHT = 0
MADE_BY = (3 << 8) | 30  # Unix, spec 3.0
FLAG_UTF8 = 0x0800
FILE_ATTR = (0o100644 << 16) & 0xFFFFFFFF
DIR_ATTR = ((0o40755 << 16) | 0x10) & 0xFFFFFFFF
U32 = 0xFFFFFFFF
U16 = 0xFFFF


class ZipSourceChanged(RuntimeError):
    """A member's bytes differed from its declared size or between two reads."""


@dataclass(frozen=True)
class ZipMember:
    """One entry: `name` is a relative POSIX path without a trailing slash."""

    name: str
    size: int = 0
    is_dir: bool = False
    read: Callable[[], Iterable[bytes]] | None = None


@dataclass(frozen=True)
class _Planned:
    member: ZipMember
    name: bytes
    offset: int
    zip64_sizes: bool

    @property
    def local_len(self) -> int:
        return 30 + len(self.name) + (20 if self.zip64_sizes else 0) + self.member.size


class StreamingZip:
    """Iterate to get the archive's bytes; `content_length` is known upfront."""

    def __init__(
        self,
        members: Sequence[ZipMember],
        *,
        buffer_limit: int = 4 * 1024 * 1024,
        zip64_threshold: int = U32,
    ) -> None:
        self.buffer_limit = buffer_limit
        self.threshold = zip64_threshold
        self.plan: list[_Planned] = []
        offset = 0
        for m in members:
            name = (m.name.strip("/") + ("/" if m.is_dir else "")).encode("utf-8")
            planned = _Planned(m, name, offset, zip64_sizes=m.size >= self.threshold)
            self.plan.append(planned)
            offset += planned.local_len
        self.cd_offset = offset
        self.cd_size = sum(46 + len(p.name) + len(self._central_extra(p)) for p in self.plan)
        self.zip64_end = (
            len(self.plan) >= min(U16, self.threshold)
            or self.cd_offset >= self.threshold
            or self.cd_size >= self.threshold
        )
        self.content_length = self.cd_offset + self.cd_size + 22 + (76 if self.zip64_end else 0)

    # -- layout helpers ---------------------------------------------------------------
    def _central_extra(self, p: _Planned) -> bytes:
        values = []
        if p.zip64_sizes:
            values += [p.member.size, p.member.size]
        if p.offset >= self.threshold:
            values.append(p.offset)
        if not values:
            return b""
        return struct.pack(f"<HH{len(values)}Q", 0x0001, 8 * len(values), *values)

    def _local_header(self, p: _Planned, crc: int) -> bytes:
        size = p.member.size
        extra = struct.pack("<HHQQ", 0x0001, 16, size, size) if p.zip64_sizes else b""
        shown = U32 if p.zip64_sizes else size
        return (
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                45 if p.zip64_sizes else 20,
                FLAG_UTF8,
                0,  # stored
                DOS_TIME_MIDNIGHT,
                DOS_DATE_1980_01_01,
                crc,
                shown,
                shown,
                len(p.name),
                len(extra),
            )
            + p.name
            + extra
        )

    def _central_header(self, p: _Planned, crc: int) -> bytes:
        extra = self._central_extra(p)
        size = U32 if p.zip64_sizes else p.member.size
        offset = U32 if p.offset >= self.threshold else p.offset
        return (
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                MADE_BY,
                45 if extra else 20,
                FLAG_UTF8,
                0,
                DOS_TIME_MIDNIGHT,
                DOS_DATE_1980_01_01,
                crc,
                size,
                size,
                len(p.name),
                len(extra),
                0,
                0,
                0,
                DIR_ATTR if p.member.is_dir else FILE_ATTR,
                offset,
            )
            + p.name
            + extra
        )

    def _end_records(self) -> bytes:
        count = len(self.plan)
        out = b""
        if self.zip64_end:
            eocd64_offset = self.cd_offset + self.cd_size
            out += struct.pack(
                "<IQHHIIQQQQ",
                0x06064B50,
                44,
                MADE_BY,
                45,
                0,
                0,
                count,
                count,
                self.cd_size,
                self.cd_offset,
            )
            out += struct.pack("<IIQI", 0x07064B50, 0, eocd64_offset, 1)
        return out + struct.pack(
            "<IHHHHIIH",
            0x06054B50,
            0,
            0,
            U16 if self.zip64_end else count,
            U16 if self.zip64_end else count,
            U32 if self.zip64_end else self.cd_size,
            U32 if self.zip64_end else self.cd_offset,
            0,
        )

    # -- streaming --------------------------------------------------------------------
    def _read_checked(self, m: ZipMember) -> Iterator[bytes]:
        assert m.read is not None
        count = 0
        for chunk in m.read():
            count += len(chunk)
            if count > m.size:
                raise ZipSourceChanged(f"{m.name}: more bytes than its declared {m.size}")
            yield chunk
        if count != m.size:
            raise ZipSourceChanged(f"{m.name}: {count} bytes, declared {m.size}")

    def __iter__(self) -> Iterator[bytes]:
        crcs: list[int] = []
        for p in self.plan:
            m = p.member
            if m.is_dir or m.size == 0:
                crc = 0
                if not m.is_dir and m.read is not None:
                    for _ in self._read_checked(m):
                        pass
                crcs.append(crc)
                yield self._local_header(p, crc)
                continue
            if m.size <= self.buffer_limit:
                data = b"".join(self._read_checked(m))
                crc = zlib.crc32(data)
                crcs.append(crc)
                yield self._local_header(p, crc)
                yield data
                continue
            crc = 0
            for chunk in self._read_checked(m):
                crc = zlib.crc32(chunk, crc)
            crcs.append(crc)
            yield self._local_header(p, crc)
            again = 0
            for chunk in self._read_checked(m):
                again = zlib.crc32(chunk, again)
                yield chunk
            if again != crc:
                raise ZipSourceChanged(f"{m.name}: bytes changed between two reads")
        central = b"".join(
            self._central_header(p, crc) for p, crc in zip(self.plan, crcs, strict=True)
        )
        assert len(central) == self.cd_size
        yield central
        yield self._end_records()


def store_members(store: ContentStore, cid: str, prefix: str = "") -> list[ZipMember]:
    """The zip members of the UnixFS directory `cid`: depth-first, in DAG (name) order,
    each file read from the store (verified against its CID) when the zip reaches it."""
    members: list[ZipMember] = []
    for entry in store.ls(cid):
        name = str(PurePosixPath(prefix, entry.name)) if prefix else entry.name
        if entry.is_dir:
            members.append(ZipMember(name=name, is_dir=True))
            members.extend(store_members(store, entry.cid, name))
        else:
            members.append(ZipMember(name=name, size=entry.size, read=_reader(store, entry.cid)))
    return members


def _reader(store: ContentStore, cid: str) -> Callable[[], Iterable[bytes]]:
    return lambda: store.cat(cid)
