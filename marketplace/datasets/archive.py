"""Safe extraction of an uploaded `.zip` dataset into a staging folder.

Refused before a byte is written (central directory checks):
- entries with absolute paths, drive letters, `..`, control characters (`UNSAFE_ARCHIVE`);
- symlinks and other non-regular entries, by their Unix mode in the external attributes;
- two entries that normalise to the same path, or a file where a folder is needed;
- an entry whose declared size / compressed size exceeds `max_compression_ratio`;
- more entries than `max_files`, or declared sizes summing past `max_bytes`
  (413 `ARCHIVE_TOO_LARGE`);
- encrypted entries or compression other than stored/deflate (`INVALID_ARCHIVE`).
While extracting, actual bytes are counted against the declared size of each entry and the
total: an archive that lies in its headers is refused as it inflates, not after.
Folder entries are not materialised: folders exist only as parents of files, so empty
folders (which zip tools add or omit at will) never change the dataset's CID. Entries
are imported as they are read (`staged.StagedDataset`): the archive is read once and
nothing is extracted to disk.
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from marketplace.datasets.errors import ArchiveTooLarge, InvalidArchive, UnsafeArchive
from marketplace.datasets.paths import UnsafePath, safe_relative_path
from marketplace.datasets.staged import PathCollision, StagedDataset

CHUNK = 1024 * 1024
_ALLOWED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}


def _entry_mode(info: zipfile.ZipInfo) -> int:
    # Unix mode lives in the high 16 bits when the archive was made on Unix (create_system 3).
    return (info.external_attr >> 16) & 0xFFFF if info.create_system == 3 else 0


def plan_extraction(
    zf: zipfile.ZipFile, *, max_bytes: int, max_files: int, max_ratio: float
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Check the central directory; return (entry, relative path) of the files to write."""
    plan: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    seen: set[PurePosixPath] = set()
    dirs: set[PurePosixPath] = set()
    total = 0
    infos = zf.infolist()
    if len(infos) > max_files * 2 + 16:  # folder entries count too, but not unboundedly
        raise ArchiveTooLarge(
            f"archive has {len(infos)} entries (limit {max_files} files)",
            details={"limit": "max_files", "max_files": max_files},
        )
    for info in infos:
        name = info.filename
        mode = _entry_mode(info)
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise UnsafeArchive(f"archive entry {name[:200]!r} is a symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchive(f"archive entry {name[:200]!r} is not a regular file")
        if info.flag_bits & 0x1:
            raise InvalidArchive(f"archive entry {name[:200]!r} is encrypted")
        if info.is_dir():
            try:
                safe_relative_path(name.rstrip("/\\") or ".")
            except UnsafePath as exc:
                raise UnsafeArchive(f"archive entry {name[:200]!r}: {exc}") from exc
            continue
        try:
            rel = safe_relative_path(name)
        except UnsafePath as exc:
            raise UnsafeArchive(f"archive entry {name[:200]!r}: {exc}") from exc
        if rel is None:
            continue  # OS clutter (__MACOSX/, .DS_Store)
        if info.compress_type not in _ALLOWED_METHODS:
            raise InvalidArchive(
                f"archive entry {name[:200]!r} uses an unsupported compression method"
            )
        if rel in seen or rel in dirs:
            raise UnsafeArchive(f"archive entry {name[:200]!r} is duplicated")
        parents = set(rel.parents) - {PurePosixPath(".")}
        if parents & seen:
            raise UnsafeArchive(f"archive entry {name[:200]!r} is inside a file entry")
        seen.add(rel)
        dirs |= parents
        if info.file_size > max(info.compress_size, 1) * max_ratio:
            raise UnsafeArchive(
                f"archive entry {name[:200]!r} expands more than {max_ratio:g}x",
                details={"entry": name[:200], "max_compression_ratio": max_ratio},
            )
        total += info.file_size
        if len(plan) + 1 > max_files:
            raise ArchiveTooLarge(
                f"archive holds more than {max_files} files",
                details={"limit": "max_files", "max_files": max_files},
            )
        if total > max_bytes:
            raise ArchiveTooLarge(
                f"archive expands past {max_bytes} bytes",
                details={"limit": "max_bytes", "max_bytes": max_bytes},
            )
        plan.append((info, rel))
    return plan


def extract_zip(
    archive: Path, dest: StagedDataset, *, max_bytes: int, max_files: int, max_ratio: float
) -> int:
    """Import `archive`'s files into the empty staged dataset `dest` under the checks
    above (each entry read once, straight into its blocks: no file tree is written);
    return the number of files. Raises a `MarketplaceError`; the caller removes what
    was staged."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidArchive(f"not a readable zip archive: {exc}") from exc
    with zf:
        try:
            plan = plan_extraction(
                zf, max_bytes=max_bytes, max_files=max_files, max_ratio=max_ratio
            )
        except (zipfile.BadZipFile, ValueError) as exc:
            raise InvalidArchive(f"corrupt zip archive: {exc}") from exc
        written = 0
        for info, rel in plan:
            count = 0
            try:
                out = dest.open_file(rel)
                with zf.open(info) as src:
                    while chunk := src.read(CHUNK):
                        count += len(chunk)
                        written += len(chunk)
                        if count > info.file_size:
                            raise UnsafeArchive(
                                f"archive entry {info.filename[:200]!r} is larger than declared"
                            )
                        if written > max_bytes:
                            raise ArchiveTooLarge(
                                f"archive expands past {max_bytes} bytes",
                                details={"limit": "max_bytes", "max_bytes": max_bytes},
                            )
                        out.write(chunk)
                out.close()
            except (
                zipfile.BadZipFile,
                zipfile.LargeZipFile,
                zlib.error,
                EOFError,
                NotImplementedError,
            ) as exc:
                raise InvalidArchive(
                    f"corrupt archive entry {info.filename[:200]!r}: {exc}"
                ) from exc
            except PathCollision as exc:
                raise UnsafeArchive(f"archive entry {info.filename[:200]!r} collides") from exc
            if count != info.file_size:
                raise InvalidArchive(f"archive entry {info.filename[:200]!r} is truncated")
        return len(plan)
