"""Benchmark of the UnixFS importer's hashing throughput.

Figures (MB = 10**6 bytes):
- in-memory import of a 256 MiB buffer (CIDv0 and CIDv1 raw leaves) vs one plain
  hashlib.sha256 over the same bytes (the floor any importer pays), as a ratio;
- a streaming import of the same bytes from a file in a fresh process, with that
  process's peak RSS (memory must not grow with the file);
- whole-process `dcm ipfs cid FILE` vs Debian's `ipfs_cid FILE` (when installed).

    PYTHONPATH=. .venv/bin/python bench/cid.py [--mib 256]

Writes bench/results/cid.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from marketplace.content.importer import ImportOptions, import_bytes

ROOT = Path(__file__).resolve().parents[1]


def best_of(n: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def child_import(path: Path) -> dict:
    # VmHWM, not ru_maxrss: the latter carries the parent's RSS over fork+exec
    code = (
        "import sys,time;from pathlib import Path;"
        "from marketplace.content.importer import import_path;"
        "t=time.perf_counter();c=import_path(Path(sys.argv[1])).cid;"
        "d=time.perf_counter()-t;"
        "hwm=[l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0];"
        "print(c, d, hwm)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout.split()
    return {"cid": out[0], "seconds": float(out[1]), "peak_rss_kib": int(out[2])}


def _read_all(path: Path) -> None:
    buf = bytearray(262144)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def whole_process(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(
        cmd, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
    ).stdout
    return time.perf_counter() - t, out.strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    size = args.mib * 1024 * 1024
    mb = size / 1e6
    data = os.urandom(size)

    sha = best_of(args.repeat, lambda: hashlib.sha256(data).digest())
    v0 = best_of(args.repeat, lambda: import_bytes(data))
    v1 = best_of(args.repeat, lambda: import_bytes(data, ImportOptions(cid_version=1)))
    results: dict = {
        "bytes": size,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "sha256_baseline_mb_s": round(mb / sha, 1),
        "import_v0_mb_s": round(mb / v0, 1),
        "import_v1_raw_leaves_mb_s": round(mb / v1, 1),
        "import_v0_vs_sha256_ratio": round(sha / v0, 3),
        "import_v1_vs_sha256_ratio": round(sha / v1, 3),
        # includes the 256 MiB test buffer itself
        "bench_process_peak_rss_mib": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "file.bin"
        path.write_bytes(data)
        data = b""  # release the buffer before the child processes run
        read_s = best_of(args.repeat, lambda: _read_all(path))
        results["file_read_baseline_mb_s"] = round(mb / read_s, 1)
        stream = min((child_import(path) for _ in range(args.repeat)), key=lambda r: r["seconds"])
        results["streaming_file_import_mb_s"] = round(mb / stream["seconds"], 1)
        results["streaming_import_process_peak_rss_mib"] = round(stream["peak_rss_kib"] / 1024, 1)
        dcm_s, dcm_cid = min(
            whole_process([sys.executable, "-m", "dcm.cli", "ipfs", "cid", str(path)])
            for _ in range(args.repeat)
        )
        results["dcm_ipfs_cid_whole_process_mb_s"] = round(mb / dcm_s, 1)
        results["cid"] = dcm_cid
        ipfs_cid = shutil.which("ipfs_cid")
        if ipfs_cid:
            t, out = min(whole_process([ipfs_cid, str(path)]) for _ in range(args.repeat))
            theirs = json.loads(out)["CIDv0"]
            results["debian_ipfs_cid_whole_process_mb_s"] = round(mb / t, 1)
            results["dcm_vs_ipfs_cid_ratio"] = round(t / dcm_s, 2)
            results["ipfs_cid_agrees"] = theirs == dcm_cid
        else:
            results["debian_ipfs_cid_whole_process_mb_s"] = None
    out_path = ROOT / "bench" / "results" / "cid.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    for k, v in results.items():
        print(f"{k:45s} {v}")


if __name__ == "__main__":
    main()
