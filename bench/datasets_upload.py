"""Benchmark of the seed-000 dataset routes over loopback, against a real `dcm serve`.

Builds two detection datasets of `--mib` MiB each (incompressible 256 KiB "PNG"s plus
labels), then measures with curl: the upload of the first as many files, the upload of the
second as one stored zip (fresh blocks both times), and the zip download; next to a plain
disk copy of the same files (`cp -r` + sync, the median of three) and, after the node
has stopped, the same zip upload to a bare app that only reads the body (the least any
server under the same uvicorn settings could cost) and to a store floor that parses nothing
but CRCs the bytes and writes them as hashed 256 KiB block files with one syncfs
(`bench/_store_floor.py`: the least an upload stored as the node stores it could cost on
this machine, where the copy's speed moves with the disk's write-back), the server's peak RSS
growth during the uploads (VmHWM after minus VmRSS before) and the CPU seconds the server
spent on each upload (user + system, from /proc: on a shared machine a steadier figure than
the wall time), and how long `GET /healthz` takes while each upload runs (asked every 10 ms
from another thread: what an upload costs the node's other requests). Prints the figures,
with the load average, and writes bench/results/datasets_upload.json.

    PYTHONPATH=$PWD python bench/datasets_upload.py --mib 512 [--src DIR]

`--src DIR` serves the node from another checkout (say `git worktree add /tmp/base main`),
to measure a change against its baseline with this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILE_BYTES = 256 * 1024
FIELDS = [
    "folderName=bench",
    "model=yolov8n",
    "epochs=1",
    "imgsz=640",
    "exportFormat=onnx",
    "numClasses=2",
    "classes=cat,dog",
    "reward=0.5",
    "requesterAddress=0xe003212E9A5b41a923566b3E093fe1c3D1c68A5A",
]


def make_dataset(root: Path, mib: int) -> tuple[int, int]:
    count = mib * 1024 * 1024 // FILE_BYTES
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    total = 0
    for i in range(count):
        data = b"\x89PNG\r\n\x1a\n" + os.urandom(FILE_BYTES - 8)
        (root / "images" / "train" / f"img_{i:05d}.png").write_bytes(data)
        label = f"{i % 2} 0.5 0.5 0.25 0.25\n".encode()
        (root / "labels" / "train" / f"img_{i:05d}.txt").write_bytes(label)
        total += len(data) + len(label)
    return count * 2, total


def zip_dataset(root: Path, archive: Path) -> None:
    """Write the files under `root` to `archive`, stored (no compression), in name order."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())


def probed(url: str, work: Callable[[], tuple[int, float]]) -> tuple[int, float, dict]:
    """Run `work` while another thread asks `url` every 10 ms; `work`'s result and the
    asks' latencies (ms: p50, p99, max, count)."""
    latencies: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            urllib.request.urlopen(url, timeout=30).close()
            latencies.append(1000 * (time.perf_counter() - started))
            done.wait(0.01)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        result = work()
    finally:
        done.set()
        prober.join()
    ordered = sorted(latencies) or [0.0]
    stats = {
        "p50": round(statistics.median(ordered), 1),
        "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
        "max": round(ordered[-1], 1),
        "count": len(latencies),
    }
    return (*result, stats)


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def curl(*args: str) -> tuple[int, float]:
    started = time.perf_counter()
    out = subprocess.run(
        ["curl", "-sS", "-o", os.devnull, "-w", "%{http_code}", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout), time.perf_counter() - started


# The disk copy is the baseline: its median of several, as one copy on a shared machine's
# disk ranged from 182 to 753 MiB/s between runs (the write-back of other work).
COPIES = 3


def disk_copy(source: Path, target: Path) -> float:
    """Seconds to copy `source` to `target` and sync it; `target` is removed again."""
    started = time.perf_counter()
    subprocess.run(["cp", "-r", str(source), str(target)], check=True)
    subprocess.run(["sync"], check=True)
    seconds = time.perf_counter() - started
    shutil.rmtree(target)
    subprocess.run(["sync"], check=True)
    return seconds


def bare_receive(zip_form: list[str], work: Path) -> float:
    """Seconds to send the zip upload to a bare Starlette app (`bench/_bare.py`, the same
    server settings as `dcm serve`) that reads the whole body and answers: the median of
    three."""
    from bench import _bare  # PYTHONPATH is the checkout (see above)

    path = "/jobs/image_processing/upload"
    answer = {"status": 200, "content_type": "application/json", "body": "{}"}
    bare, url = _bare.start({f"POST {path}": answer, "GET /healthz": answer}, work, "/healthz")
    try:
        return _median_upload(url + path, zip_form)
    finally:
        bare.terminate()
        bare.wait(timeout=20)


def store_floor(zip_form: list[str], work: Path) -> float:
    """Seconds to send the zip upload to `bench/_store_floor.py`, which stores its bytes as
    hashed block files and syncs them, parsing nothing: the median of three."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    blocks = work / "floor-blocks"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench._store_floor", str(port), str(blocks)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    try:
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        return _median_upload(f"http://127.0.0.1:{port}/upload", zip_form)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(blocks, ignore_errors=True)


def _median_upload(url: str, form: list[str]) -> float:
    runs = []
    for _ in range(COPIES):
        code, seconds = curl("-X", "POST", url, *form)
        assert code == 200, code
        runs.append(seconds)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--src", type=Path, default=ROOT, help="serve the node from here")
    args = parser.parse_args()
    src = args.src.resolve()
    work = Path(tempfile.mkdtemp(prefix="dcm-bench-"))
    proc = None
    try:
        dataset = work / "dataset"
        files, nbytes = make_dataset(dataset, args.mib)
        subprocess.run(["sync"], check=True)

        copies = [disk_copy(dataset, work / "copy") for _ in range(COPIES)]
        copy_s = statistics.median(copies)

        # A second dataset of other random bytes for the zip run, so its blocks are new too.
        other = work / "other"
        make_dataset(other, args.mib)
        archive = work / "dataset.zip"
        zip_dataset(other, archive)
        shutil.rmtree(other)

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "PYTHONPATH": str(src), "DCM_DATA_DIR": str(work / "node")}
        env.pop("DCM_DATABASE_URL", None)
        env["DCM_UPLOAD__MAX_BYTES"] = str(4 * 1024**3)
        subprocess.run(
            [sys.executable, "-m", "dcm.cli", "db", "upgrade"], env=env, cwd=src, check=True
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "dcm.cli", "serve", "--port", str(port)],
            env=env,
            cwd=src,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):  # a loaded machine starts the node slowly
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        curl(url + "/jobs/get-jobs")  # warm up imports and the DB
        rss_before = status_kib(proc.pid, "VmRSS")

        form = [a for f in FIELDS for a in ("-F", f)]
        file_args = []
        for p in sorted(dataset.rglob("*")):
            if p.is_file():
                file_args += ["-F", f"files=@{p};filename={p.relative_to(dataset).as_posix()}"]
        argfile = work / "curl.cfg"  # too many -F for one command line: use a config file
        argfile.write_text(
            "\n".join(f'{a} "{b}"' for a, b in zip(file_args[::2], file_args[1::2], strict=True))
        )
        health = url + "/healthz"
        cpu_before = cpu_seconds(proc.pid)
        code, files_s, files_health = probed(
            health,
            lambda: curl(
                "-X", "POST", url + "/jobs/image_processing/upload", *form, "-K", str(argfile)
            ),
        )
        assert code == 200, code
        cpu_files = cpu_seconds(proc.pid) - cpu_before
        cpu_before = cpu_seconds(proc.pid)
        zip_form = [*form, "-F", f"files=@{archive}"]
        code, zip_s, zip_health = probed(
            health, lambda: curl("-X", "POST", url + "/jobs/image_processing/upload", *zip_form)
        )
        assert code == 200, code
        cpu_zip = cpu_seconds(proc.pid) - cpu_before
        peak_growth_kib = status_kib(proc.pid, "VmHWM") - rss_before
        code, download_s = curl(url + "/jobs/get-dataset/1")
        assert code == 200, code
        proc.terminate()
        proc.wait(timeout=20)
        proc = None
        bare_s = bare_receive(zip_form, work)
        floor_s = store_floor(zip_form, work)

        mib = nbytes / 1024**2
        result = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average": [round(x, 2) for x in os.getloadavg()],
            },
            "dataset": {"files": files, "bytes": nbytes, "zip_bytes": archive.stat().st_size},
            "disk_copy_mib_s": round(mib / copy_s, 1),
            "disk_copy_mib_s_runs": [round(mib / c, 1) for c in copies],
            "upload_files_mib_s": round(mib / files_s, 1),
            "upload_zip_mib_s": round(mib / zip_s, 1),
            "download_zip_mib_s": round(mib / download_s, 1),
            "upload_files_vs_copy": round(copy_s / files_s, 3),
            "upload_zip_vs_copy": round(copy_s / zip_s, 3),
            # the same zip upload to a bare app that only reads the body: what any server
            # under uvicorn costs, hence the most an upload could reach against the copy
            "bare_receive_zip_mib_s": round(mib / bare_s, 1),
            "bare_receive_vs_copy": round(copy_s / bare_s, 3),
            "upload_zip_vs_bare_receive": round(bare_s / zip_s, 3),
            # the same zip to a server that only CRCs, hashes and writes it as block files
            # and syncs them: the least an upload stored as the node stores it could cost
            "store_floor_zip_mib_s": round(mib / floor_s, 1),
            "store_floor_vs_copy": round(copy_s / floor_s, 3),
            "upload_zip_vs_store_floor": round(floor_s / zip_s, 3),
            "server_peak_rss_growth_mib": round(peak_growth_kib / 1024, 1),
            "source": "this checkout" if src == ROOT else str(src),
            "healthz_ms_during_upload": {"upload_files": files_health, "upload_zip": zip_health},
            "server_cpu_seconds": {
                "upload_files": round(cpu_files, 2),
                "upload_zip": round(cpu_zip, 2),
            },
            "seconds": {
                "disk_copy": round(copy_s, 2),
                "upload_files": round(files_s, 2),
                "upload_zip": round(zip_s, 2),
                "download_zip": round(download_s, 2),
                "bare_receive_zip": round(bare_s, 2),
                "store_floor_zip": round(floor_s, 2),
            },
        }
        print(json.dumps(result, indent=2))
        out = ROOT / "bench" / "results" / "datasets_upload.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
