"""Benchmark of the document handlers (seed 004's `pdf` jobs), in process, on the test
PDF (page 1: text layer; page 2: a scan) repeated to `--pages` pages.

Figures: seconds per page for each extraction method (native with and without page images,
ocr, combined), best of `--repeat`; combined OCRs only the scanned half, so it should sit
between native and ocr.

    PYTHONPATH=. .venv/bin/python bench/documents.py [--pages 10] [--repeat 3]

Writes bench/results/documents.json.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

from marketplace.jobs.documents import parse_params
from tests.fixtures.documents import scanned_pdf, text_pdf
from worker.executors.base import JobSpec, RecordingReporter
from worker.executors.documents import PdfHandler

ROOT = Path(__file__).resolve().parents[1]


def make_pdf(path: Path, pages: int) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for i in range(pages):
        part = text_pdf([f"Text page {i}"]) if i % 2 == 0 else scanned_pdf([f"SCAN {i}"])
        writer.append(PdfReader(io.BytesIO(part)))
    with path.open("wb") as f:
        writer.write(f)


def run(folder: Path, params: dict, work: Path) -> float:
    settings = parse_params("pdf", {"filename": "x", **params}).model_dump(mode="json")
    spec = {"settings": settings, "inputs": [{"ref": "x", "name": "00-doc.pdf"}]}
    job = JobSpec(job_id="job_1", attempt=1, job_type="pdf", spec=spec, dataset_dir=folder)
    shutil.rmtree(work, ignore_errors=True)
    t = time.perf_counter()
    PdfHandler().run(job, work, RecordingReporter())
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    problem = PdfHandler().missing()
    if problem:
        raise SystemExit(f"cannot run: {problem}")
    cases = {
        "native_no_images": {"extraction_method": "native", "page_images": False},
        "native_with_images": {"extraction_method": "native"},
        "combined": {"extraction_method": "combined", "page_images": False},
        "ocr": {"extraction_method": "ocr", "page_images": False},
    }
    results: dict[str, object] = {
        "pages": args.pages,
        "dpi": 150,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        make_pdf(folder / "00-doc.pdf", args.pages)
        for name, params in cases.items():
            best = min(run(folder, params, Path(tmp) / "w") for _ in range(args.repeat))
            results[f"{name}_seconds_per_page"] = round(best / args.pages, 3)
    out = ROOT / "bench" / "results" / "documents.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    for k, v in results.items():
        print(f"{k:40s} {v}")


if __name__ == "__main__":
    main()
