"""The checks every entry of an uploaded `.zip` dataset passes (`EntryRules`); the
archive is read, as it streams in, by `archive_stream.ZipImport`.

Refused:
- entries with absolute paths, drive letters, `..`, control characters (`UNSAFE_ARCHIVE`);
- symlinks and other non-regular entries, by their Unix mode in the external attributes;
- two entries that normalise to the same path, or a file where a folder is needed;
- an entry whose declared size / compressed size exceeds `max_compression_ratio`;
- more entries than `max_files`, or declared sizes summing past `max_bytes`
  (413 `ARCHIVE_TOO_LARGE`);
- encrypted entries or compression other than stored/deflate (`INVALID_ARCHIVE`).
While importing, actual bytes are counted against the declared size of each entry and the
total: an archive that lies in its headers is refused as it inflates, not after.
Folder entries are not materialised: folders exist only as parents of files, so empty
folders (which zip tools add or omit at will) never change the dataset's CID. Entries
are imported as they are read (`staged.StagedDataset`): nothing is extracted to disk.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import PurePosixPath

from marketplace.datasets.errors import ArchiveTooLarge, InvalidArchive, UnsafeArchive
from marketplace.datasets.paths import UnsafePath, safe_relative_path

_ALLOWED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}


def entry_mode(create_system: int, external_attr: int) -> int:
    """An entry's Unix mode: the high 16 bits of its external attributes when the archive
    was made on Unix (create_system 3), else 0 (unknown)."""
    return (external_attr >> 16) & 0xFFFF if create_system == 3 else 0


class EntryRules:
    """The checks of the module's docstring, entry by entry. A streaming reader knows an
    entry's Unix mode only from the central directory, at the end (`check_mode`), and,
    behind a data descriptor, its sizes only as it reads them (`check_ratio`,
    `check_total`)."""

    def __init__(self, *, max_bytes: int, max_files: int, max_ratio: float) -> None:
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.max_ratio = max_ratio
        self.files = 0
        self._seen: set[PurePosixPath] = set()
        self._dirs: set[PurePosixPath] = set()
        self._declared = 0

    def check_mode(self, name: str, mode: int) -> None:
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise UnsafeArchive(f"archive entry {name[:200]!r} is a symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchive(f"archive entry {name[:200]!r} is not a regular file")

    def check(
        self,
        name: str,
        *,
        mode: int,
        flag_bits: int,
        method: int,
        file_size: int | None,
        compress_size: int | None,
    ) -> PurePosixPath | None:
        """The relative path to import the entry `name` at; None for a folder or OS
        clutter, whose bytes are skipped. Sizes are None where not known yet."""
        self.check_mode(name, mode)
        if flag_bits & 0x1:
            raise InvalidArchive(f"archive entry {name[:200]!r} is encrypted")
        if name.endswith("/"):
            try:
                safe_relative_path(name.rstrip("/\\") or ".")
            except UnsafePath as exc:
                raise UnsafeArchive(f"archive entry {name[:200]!r}: {exc}") from exc
            return None
        try:
            rel = safe_relative_path(name)
        except UnsafePath as exc:
            raise UnsafeArchive(f"archive entry {name[:200]!r}: {exc}") from exc
        if rel is None:
            return None  # OS clutter (__MACOSX/, .DS_Store)
        if method not in _ALLOWED_METHODS:
            raise InvalidArchive(
                f"archive entry {name[:200]!r} uses an unsupported compression method"
            )
        if rel in self._seen or rel in self._dirs:
            raise UnsafeArchive(f"archive entry {name[:200]!r} is duplicated")
        parents = set(rel.parents) - {PurePosixPath(".")}
        if parents & self._seen:
            raise UnsafeArchive(f"archive entry {name[:200]!r} is inside a file entry")
        self._seen.add(rel)
        self._dirs |= parents
        if file_size is not None and compress_size is not None:
            self.check_ratio(name, file_size, compress_size)
        self._declared += file_size or 0
        if self.files + 1 > self.max_files:
            raise ArchiveTooLarge(
                f"archive holds more than {self.max_files} files",
                details={"limit": "max_files", "max_files": self.max_files},
            )
        self.check_total(self._declared)
        self.files += 1
        return rel

    def check_ratio(self, name: str, file_size: int, compress_size: int) -> None:
        if file_size > max(compress_size, 1) * self.max_ratio:
            raise UnsafeArchive(
                f"archive entry {name[:200]!r} expands more than {self.max_ratio:g}x",
                details={"entry": name[:200], "max_compression_ratio": self.max_ratio},
            )

    def check_total(self, total: int) -> None:
        if total > self.max_bytes:
            raise ArchiveTooLarge(
                f"archive expands past {self.max_bytes} bytes",
                details={"limit": "max_bytes", "max_bytes": self.max_bytes},
            )
