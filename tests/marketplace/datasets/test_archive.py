from __future__ import annotations

import io
import struct
import warnings
import zipfile
from pathlib import Path

import pytest

from marketplace.content.staged import StagedBlocks
from marketplace.datasets.archive_stream import ZipImport
from marketplace.datasets.errors import ArchiveTooLarge, InvalidArchive, UnsafeArchive
from marketplace.datasets.layout import dataset_root
from marketplace.datasets.staged import StagedDataset, StagedPath

LIMITS = {"max_bytes": 10_000_000, "max_files": 100, "max_ratio": 200.0}


def _zip(tmp_path: Path, entries, method=zipfile.ZIP_DEFLATED) -> Path:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names on purpose
        with zipfile.ZipFile(buf, "w", method) as zf:
            for entry in entries:
                if isinstance(entry, zipfile.ZipInfo):
                    zf.writestr(entry, b"target")
                else:
                    name, data = entry
                    zf.writestr(name, data)
    path = tmp_path / "upload.zip"
    path.write_bytes(buf.getvalue())
    return path


def _extract(tmp_path: Path, archive: Path, piece: int = 4096, **limits) -> StagedPath:
    """Import `archive`, fed in pieces of `piece` bytes as an upload streams it in, into a
    staged dataset whose blocks go to `tmp_path/out`."""
    dest = StagedDataset(StagedBlocks(tmp_path / "out"))
    importer = ZipImport(dest, **{**LIMITS, **limits})
    data = archive.read_bytes()
    for at in range(0, len(data), piece):
        importer.feed(data[at : at + piece])
    importer.finish()
    return dest.root


def _files(root: StagedPath) -> list[str]:
    return sorted(p.as_posix() for p in root.list_files())


def test_wrapped_zip_extracts_and_skips_os_clutter(tmp_path):
    archive = _zip(
        tmp_path,
        [
            ("ds/", b""),
            ("ds/images/train/a.png", b"png"),
            ("ds/labels/train/a.txt", b"0 0.5 0.5 0.1 0.1\n"),
            ("__MACOSX/ds/._a.png", b"junk"),
            ("ds/.DS_Store", b"junk"),
            ("ds/images/.hidden", b"junk"),
            ("ds/empty/", b""),
        ],
    )
    dest = _extract(tmp_path, archive)
    assert _files(dest) == ["ds/images/train/a.png", "ds/labels/train/a.txt"]
    assert not (dest / "ds" / "empty").exists()
    assert dataset_root(dest) == dest / "ds"


def test_layout_folder_is_not_stripped_as_a_wrapper(tmp_path):
    dest = _extract(tmp_path, _zip(tmp_path, [("train/cat/a.png", b"x")]))
    assert dataset_root(dest) == dest


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "../evil.txt", "ds/../../evil.txt", "..\\evil.txt", "C:/evil.txt", "a//b"],
)
def test_unsafe_entry_names_are_refused(tmp_path, name):
    with pytest.raises(UnsafeArchive) as err:
        _extract(tmp_path, _zip(tmp_path, [("ok.txt", b"1"), (name, b"2")]))
    assert err.value.status == 400 and err.value.code == "UNSAFE_ARCHIVE"
    assert repr(name[:200]) in err.value.message  # refused on that entry's header


def test_symlink_entry_is_refused(tmp_path):
    link = zipfile.ZipInfo("images/link.png")
    link.create_system = 3
    link.external_attr = (0o120777 << 16) & 0xFFFFFFFF
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        _extract(tmp_path, _zip(tmp_path, [link]))


def test_duplicate_entries_are_refused(tmp_path):
    archive = _zip(tmp_path, [("a/b.txt", b"1"), ("a/b.txt", b"2")])
    with pytest.raises(UnsafeArchive, match="duplicated"):
        _extract(tmp_path, archive)


def test_file_and_folder_with_the_same_path_are_refused(tmp_path):
    archive = _zip(tmp_path, [("a", b"1"), ("a/b.txt", b"2")])
    with pytest.raises(UnsafeArchive):
        _extract(tmp_path, archive)


def test_compression_ratio_over_the_bound_is_refused(tmp_path):
    archive = _zip(tmp_path, [("bomb.txt", b"\0" * 2_000_000)])
    with pytest.raises(UnsafeArchive, match="expands more than 200x") as err:
        _extract(tmp_path, archive)
    assert err.value.details["max_compression_ratio"] == 200.0


def test_declared_total_over_the_limit_is_refused(tmp_path):
    archive = _zip(tmp_path, [("a.bin", b"x" * 600), ("b.bin", b"y" * 600)], zipfile.ZIP_STORED)
    with pytest.raises(ArchiveTooLarge) as err:
        _extract(tmp_path, archive, max_bytes=1000)
    assert err.value.status == 413 and err.value.code == "ARCHIVE_TOO_LARGE"


def test_too_many_entries_is_refused_before_they_are_counted_as_files(tmp_path):
    archive = _zip(tmp_path, [(f"d{i}/", b"") for i in range(27)])  # folders: no files
    with pytest.raises(ArchiveTooLarge, match="more than 26 entries") as err:
        _extract(tmp_path, archive, max_files=5)
    assert err.value.details == {"limit": "max_files", "max_files": 5}


def test_too_many_files_is_refused(tmp_path):
    archive = _zip(tmp_path, [(f"f{i}.txt", b"1") for i in range(6)])
    with pytest.raises(ArchiveTooLarge, match="more than 5 files"):
        _extract(tmp_path, archive, max_files=5)


def _patch_sizes(archive: Path, name: bytes, new_size: int) -> None:
    """Rewrite the declared uncompressed size of `name` in local and central headers."""
    data = bytearray(archive.read_bytes())
    pos = 0
    while (pos := data.find(b"PK\x03\x04", pos)) != -1:
        if data[pos + 30 : pos + 30 + len(name)] == name:
            struct.pack_into("<I", data, pos + 22, new_size)
        pos += 4
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) != -1:
        if data[pos + 46 : pos + 46 + len(name)] == name:
            struct.pack_into("<I", data, pos + 24, new_size)
        pos += 4
    archive.write_bytes(bytes(data))


@pytest.mark.parametrize("declared", [10, 5000])
def test_entry_whose_bytes_differ_from_its_declared_size_is_refused(tmp_path, declared):
    archive = _zip(tmp_path, [("a.txt", b"abc" * 300)])
    _patch_sizes(archive, b"a.txt", declared)
    with pytest.raises((InvalidArchive, UnsafeArchive)) as err:
        _extract(tmp_path, archive)
    assert err.value.status == 400


def test_encrypted_entry_is_refused(tmp_path):
    archive = _zip(tmp_path, [("secret.txt", b"s3cret")])
    data = bytearray(archive.read_bytes())
    data[data.find(b"PK\x03\x04") + 6] |= 0x1  # general purpose flag: encrypted
    data[data.find(b"PK\x01\x02") + 8] |= 0x1
    archive.write_bytes(bytes(data))
    with pytest.raises(InvalidArchive, match="encrypted"):
        _extract(tmp_path, archive)


def test_not_a_zip_is_refused(tmp_path):
    bogus = tmp_path / "x.zip"
    bogus.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(InvalidArchive):
        _extract(tmp_path, bogus)
