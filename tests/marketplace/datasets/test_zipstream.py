from __future__ import annotations

import io
import shutil
import subprocess
import zipfile

import pytest

from marketplace.datasets.zipstream import StreamingZip, ZipMember, ZipSourceChanged


def _member(name: str, data: bytes, chunk: int = 7) -> ZipMember:
    return ZipMember(
        name=name,
        size=len(data),
        read=lambda: (data[i : i + chunk] for i in range(0, len(data), chunk)),
    )


FILES = {
    "images/train/a.png": b"\x89PNG" + bytes(range(256)) * 40,
    "images/train/b.png": b"",
    "labels/train/a.txt": b"0 0.5 0.5 0.1 0.1\n",
    "notes/é.txt": "ünïcode".encode(),
}


def _members() -> list[ZipMember]:
    out = []
    for folder in ("images", "images/train", "labels", "labels/train", "notes"):
        out.append(ZipMember(name=folder, is_dir=True))
    out += [_member(name, data) for name, data in FILES.items()]
    return sorted(out, key=lambda m: m.name)


def _bytes(archive: StreamingZip) -> bytes:
    data = b"".join(archive)
    assert len(data) == archive.content_length
    return data


def _check_readable(data: bytes) -> zipfile.ZipFile:
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None
    for name, content in FILES.items():
        assert zf.read(name) == content
        info = zf.getinfo(name)
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.compress_type == zipfile.ZIP_STORED
        assert info.external_attr >> 16 == 0o100644
    assert zf.getinfo("images/").is_dir()
    return zf


def test_same_members_give_the_same_bytes():
    first, second = _bytes(StreamingZip(_members())), _bytes(StreamingZip(_members()))
    assert first == second
    _check_readable(first)


def test_big_files_are_read_twice_and_give_the_same_archive():
    buffered = _bytes(StreamingZip(_members()))
    streamed = _bytes(StreamingZip(_members(), buffer_limit=16))
    assert buffered == streamed


def test_zip64_fields_are_readable_when_needed():
    data = _bytes(StreamingZip(_members(), zip64_threshold=100))
    assert b"PK\x06\x06" in data  # zip64 end of central directory
    _check_readable(data)


@pytest.mark.skipif(shutil.which("unzip") is None, reason="Info-ZIP unzip not installed")
@pytest.mark.parametrize("threshold", [0xFFFFFFFF, 100])
def test_info_zip_accepts_the_archive(tmp_path, threshold):
    path = tmp_path / "d.zip"
    path.write_bytes(_bytes(StreamingZip(_members(), zip64_threshold=threshold)))
    result = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_source_shorter_than_declared_raises():
    bad = ZipMember(name="a", size=10, read=lambda: iter([b"12345"]))
    with pytest.raises(ZipSourceChanged):
        b"".join(StreamingZip([bad]))


def test_source_changing_between_reads_raises():
    reads = iter([b"a" * 32, b"b" * 32])
    flaky = ZipMember(name="a", size=32, read=lambda: iter([next(reads)]))
    with pytest.raises(ZipSourceChanged, match="changed"):
        b"".join(StreamingZip([flaky], buffer_limit=8))
