"""A `.zip` read as it streams in (`ZipImport`) stages the dataset the tree itself gives,
whoever wrote the archive and however its bytes are cut; an archive whose local headers
and central directory disagree, or that cannot be read front to back, is refused."""

from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from marketplace.content.importer import import_path
from marketplace.content.staged import StagedBlocks
from marketplace.datasets.archive_stream import ZipImport, entries_in
from marketplace.datasets.errors import ArchiveTooLarge, InvalidArchive, UnsafeArchive
from marketplace.datasets.staged import StagedDataset
from marketplace.errors import MarketplaceError

LIMITS = {"max_bytes": 200_000_000, "max_files": 100, "max_ratio": 200.0}


class _Unseekable(io.RawIOBase):
    """A write-only stream: zipfile then writes data descriptors (flag bit 3)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.buf += b
        return len(b)


def _tree(root: Path) -> Path:
    rng = random.Random(3)
    files = {
        "images/train/a.png": b"\x89PNG\r\n\x1a\n" + rng.randbytes(300_000),
        "images/train/b.png": b"\x89PNG" + b"PK\x07\x08" * 5000 + rng.randbytes(70_000),
        "labels/train/a.txt": b"0 0.5 0.5 0.1 0.1\n" * 40,
        "labels/train/b.txt": b"",
        "notes.txt": rng.randbytes(150_000).hex().encode(),  # compresses about 2x
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def _written_by_zipfile(tree: Path, method: int, seekable: bool, zip64: bool) -> bytes:
    out = io.BytesIO() if seekable else _Unseekable()
    with zipfile.ZipFile(out, "w", method) as zf:  # type: ignore[arg-type]
        for p in sorted(tree.rglob("*")):
            if p.is_dir():
                zf.mkdir(p.relative_to(tree).as_posix())
                continue
            with zf.open(p.relative_to(tree).as_posix(), "w", force_zip64=zip64) as w:
                w.write(p.read_bytes())
    return out.getvalue() if seekable else bytes(out.buf)  # type: ignore[union-attr]


def _import(data: bytes, tmp_path: Path, piece: int, **limits) -> StagedDataset:
    dest = StagedDataset(StagedBlocks(tmp_path / f"out-{random.random()}"))
    importer = ZipImport(dest, **{**LIMITS, **limits})
    for at in range(0, len(data), piece):
        importer.feed(data[at : at + piece])
    importer.finish()
    return dest


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize("seekable", [True, False], ids=["sizes-in-header", "descriptors"])
@pytest.mark.parametrize("zip64", [False, True], ids=["zip32", "zip64"])
def test_zipfile_archives_stage_the_tree(tmp_path, method, seekable, zip64):
    tree = _tree(tmp_path / "tree")
    data = _written_by_zipfile(tree, method, seekable, zip64)
    files = [i for i in zipfile.ZipFile(io.BytesIO(data)).infolist() if not i.is_dir()]
    assert all(bool(i.flag_bits & 0x8) != seekable for i in files)  # the case under test
    want = import_path(tree).cid
    for piece in (7, 4096, 65536, len(data)):
        assert _import(data, tmp_path, piece).import_dir().cid == want


@pytest.mark.parametrize("streamed", [False, True], ids=["zip-r", "zip-r-to-stdout"])
@pytest.mark.parametrize("level", ["-0", "-6"])
def test_info_zip_archives_stage_the_tree(tmp_path, streamed, level):
    if shutil.which("zip") is None:  # CI installs it (.ci/provision.d/05-tools.sh)
        if os.environ.get("DCM_REQUIRE_ENGINES"):
            pytest.fail("Info-ZIP's zip is not installed")
        pytest.skip("Info-ZIP's zip is not installed")
    tree = _tree(tmp_path / "tree")
    target = tmp_path / "a.zip"
    cmd = ["zip", "-q", "-r", "-X", level, "-" if streamed else str(target), "."]
    done = subprocess.run(cmd, cwd=tree, check=True, capture_output=True)
    data = done.stdout if streamed else target.read_bytes()
    assert _import(data, tmp_path, 4096).import_dir().cid == import_path(tree).cid


def _stored_entry_with_descriptor(data: bytes, *, signed: bool) -> bytes:
    """One stored entry with a data descriptor, written by hand (zipfile writes none for
    a stored entry it can seek over), its central directory consistent with it."""
    import zlib

    name = b"a.bin"
    crc = zlib.crc32(data)
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0x8, 0, 0, 0, 0, 0, 0, len(name), 0)
    desc = (b"PK\x07\x08" if signed else b"") + struct.pack("<III", crc, len(data), len(data))
    body = local + name + data + desc
    central = (
        struct.pack(
            "<4sBBBBHHHHIIIHHHHHII",
            b"PK\x01\x02",
            20,
            3,
            20,
            0,
            0x8,
            0,
            0,
            0,
            crc,
            len(data),
            len(data),
            len(name),
            0,
            0,
            0,
            0,
            (0o100644 << 16),
            0,
        )
        + name
    )
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(body), 0)
    return body + central + end


def test_a_stored_entry_ends_at_its_matching_descriptor_not_a_lookalike(tmp_path):
    data = b"xyz" + b"PK\x07\x08" + b"\0" * 12 + b"PK\x07\x08" * 3 + os.urandom(1000)
    archive = _stored_entry_with_descriptor(data, signed=True)
    for piece in (1, 5, 17, len(archive)):
        dest = _import(archive, tmp_path, piece)
        assert dest.read(PurePosixPath("a.bin")) == data


def test_a_stored_entry_whose_descriptor_has_no_signature_is_refused(tmp_path):
    archive = _stored_entry_with_descriptor(b"hello" * 100, signed=False)
    with pytest.raises(InvalidArchive, match="before its central directory"):
        _import(archive, tmp_path, 4096)


def _patched(data: bytes, sig: bytes, offset: int, value: bytes) -> bytes:
    out = bytearray(data)
    at = out.find(sig)
    out[at + offset : at + offset + len(value)] = value
    return bytes(out)


def test_a_central_directory_that_disagrees_with_the_local_headers_is_refused(tmp_path):
    tree = _tree(tmp_path / "tree")
    good = _written_by_zipfile(tree, zipfile.ZIP_DEFLATED, True, False)
    first = zipfile.ZipFile(io.BytesIO(good)).infolist()[0].filename.encode()
    cases = {
        "name": _patched(good, b"PK\x01\x02", 46, b"X" * len(first)),
        "crc": _patched(good, b"PK\x01\x02", 16, b"\x01\0\0\0"),
        "offset": _patched(good, b"PK\x01\x02", 42, b"\x01\0\0\0"),
    }
    for case, data in cases.items():
        with pytest.raises(InvalidArchive, match="disagrees"):
            _import(data, tmp_path, 65536)
            pytest.fail(f"a central directory with another {case} was accepted")


def test_what_cannot_be_read_front_to_back_is_refused(tmp_path):
    tree = _tree(tmp_path / "tree")
    good = _written_by_zipfile(tree, zipfile.ZIP_DEFLATED, True, False)
    for bad, words in [
        (b"MZ\x90\x00" + good, "before its first entry"),  # a self-extractor's stub
        (good + b"junk", "follow the archive's end record"),
        (good[: len(good) // 2], "before its central directory"),
        (good[:-22], "no end of central directory"),
        (b"", "empty"),
    ]:
        with pytest.raises(InvalidArchive, match=words):
            _import(bad, tmp_path, 4096)


def test_a_symlink_is_refused_by_the_central_directory(tmp_path):
    out = _Unseekable()
    with zipfile.ZipFile(out, "w") as zf:  # type: ignore[arg-type]
        link = zipfile.ZipInfo("images/link.png")
        link.create_system = 3
        link.external_attr = (0o120777 << 16) & 0xFFFFFFFF
        zf.writestr(link, b"/etc/passwd")
    with pytest.raises(UnsafeArchive, match="symbolic link"):
        _import(bytes(out.buf), tmp_path, 4096)


def test_a_bomb_behind_a_descriptor_is_refused_while_it_inflates(tmp_path):
    out = _Unseekable()  # sizes unknown up front: only the inflating can tell
    with (
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf,  # type: ignore[arg-type]
        zf.open("bomb.bin", "w") as w,
    ):
        for _ in range(64):
            w.write(bytes(1 << 20))
    data = bytes(out.buf)
    assert len(data) < 100_000
    dest = StagedDataset(StagedBlocks(tmp_path / "out"))
    importer = ZipImport(dest, **LIMITS)
    with pytest.raises(UnsafeArchive, match="expands more than 200x"):
        for at in range(0, len(data), 4096):
            importer.feed(data[at : at + 4096])
    staged = sum(p.stat().st_size for p in (tmp_path / "out").iterdir())
    assert staged < 2 << 20  # refused after about 200x of what came in, not 64 MiB


def test_the_byte_limit_holds_behind_descriptors(tmp_path):
    tree = _tree(tmp_path / "tree")
    data = _written_by_zipfile(tree, zipfile.ZIP_STORED, False, False)
    with pytest.raises(ArchiveTooLarge):
        _import(data, tmp_path, 4096, max_bytes=500_000)


def test_damaged_archives_are_refused_with_an_archive_error_or_read_as_written(tmp_path):
    """Random damage gives a domain error (a 4xx) or, where it hit nothing checked, the
    archive's own entries: never another exception."""
    rng = random.Random(12)
    outcomes: dict[str, int] = {}
    tree = tmp_path / "small"
    for name in ("images/a.png", "images/b.png", "labels/a.txt", "labels/b.txt"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(rng.randbytes(rng.randrange(0, 3000)) + b"PK\x07\x08")
    for method, seekable in [(zipfile.ZIP_DEFLATED, True), (zipfile.ZIP_STORED, False)]:
        good = _written_by_zipfile(tree, method, seekable, False)
        for _ in range(400):
            data = bytearray(good)
            for _ in range(rng.choice([1, 2, 8])):
                at = rng.randrange(len(data))
                data[at] = rng.randrange(256)
            try:
                dest = _import(bytes(data), tmp_path, rng.choice([1, 7, 512, 65536]))
            except MarketplaceError as exc:
                assert exc.status in (400, 413)
                outcomes[exc.code] = outcomes.get(exc.code, 0) + 1
            else:
                outcomes["read"] = outcomes.get("read", 0) + 1
                assert len(dest.files) <= 4
    assert outcomes.get("read", 0) >= 3 and outcomes.get("INVALID_ARCHIVE", 0) > 100, outcomes


@pytest.mark.parametrize("pipelined", [False, True], ids=["inline", "pipelined"])
@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_an_entry_whose_bytes_fail_its_crc_is_refused(tmp_path, method, pipelined):
    """An entry of declared size has its CRC taken where its bytes are hashed, in the
    pipeline's thread when there is one (`StagedWriter`): a byte changed in its data is
    still refused, and the file is never listed."""
    data_of_a = random.Random(5).randbytes(200_000)  # deflate stores it: the byte survives
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        zf.writestr("images/a.png", data_of_a)
        zf.writestr("labels/a.txt", b"0 0.5 0.5 0.1 0.1\n")
    data = bytearray(buf.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("images/a.png")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    dest = StagedDataset(StagedBlocks(tmp_path / "out"))
    staging = dest.pipelined() if pipelined else contextlib.nullcontext()
    with pytest.raises(InvalidArchive, match="fails its CRC check"), staging:
        importer = ZipImport(dest, **LIMITS)
        for at in range(0, len(data), 4096):
            importer.feed(bytes(data[at : at + 4096]))
        importer.finish()
        dest.drain()
    assert PurePosixPath("images/a.png") not in dest.files


def test_entries_in_counts_headers_as_the_import_reads_them():
    """`entries_in` walks from header to header past each entry's stated data: a
    signature inside an entry's bytes is not an entry; where the sizes come after the data
    (a descriptor), it searches every byte."""
    data_with_signatures = b"PK\x03\x04" * 1000
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.txt", data_with_signatures)
        zf.writestr("b.txt", b"plain")
        zf.writestr("c.txt", b"plain too")
        second = zf.getinfo("b.txt").header_offset
    stored = buf.getvalue()
    assert stored.count(b"PK\x03\x04") == 1003
    assert entries_in(stored) == 3
    assert entries_in(stored, second) == 2  # from the second entry's header on
    assert entries_in(stored[:40]) == 1  # the first header; its data is cut by the end
    streamed = _Unseekable()
    with zipfile.ZipFile(streamed, "w", zipfile.ZIP_STORED) as zf:  # type: ignore[arg-type]
        zf.writestr("a.txt", data_with_signatures)
        zf.writestr("b.txt", b"plain")
    # behind a descriptor the data's length is unknown: every signature counts
    assert entries_in(bytes(streamed.buf)) == 1002
