"""What the document handlers share: tool checks, inputs, steps, the output directory."""

from __future__ import annotations

import functools
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from marketplace.errors import ValidationFailed
from worker.executors.base import ExecutionCancelled, ExecutionResult, JobSpec, Reporter

RESULT_TYPE = "document_result"
TOOL_TIMEOUT = 300


@functools.cache
def tesseract_languages() -> tuple[str, ...]:
    exe = shutil.which("tesseract")
    if exe is None:
        return ()
    try:
        out = subprocess.run(
            [exe, "--list-langs"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(sorted(x.strip() for x in out.stdout.splitlines()[1:] if x.strip()))


@functools.cache
def tesseract_version() -> str | None:
    exe = shutil.which("tesseract")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    first = (out.stdout or out.stderr).splitlines()
    return first[0].split()[-1] if first else None


def missing_tools(needs: tuple[str, ...]) -> str | None:
    """Why a handler needing `needs` cannot run on this machine, or None."""
    for need in needs:
        if need in ("pypdf", "jinja2"):
            if importlib.util.find_spec(need) is None:
                return f"{need} is not installed (pip install {need})"
        elif need == "tesseract":
            if shutil.which("tesseract") is None:
                return (
                    "tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-eng)"
                )
            if "eng" not in tesseract_languages():
                return "tesseract has no English data (apt-get install tesseract-ocr-eng)"
        elif need == "pdftoppm" and shutil.which("pdftoppm") is None:
            return "pdftoppm is not installed (apt-get install poppler-utils)"
    return None


def capabilities() -> dict[str, Any]:
    """What a provider with the document handlers adds to its registration."""
    return {
        "documents": {
            "tesseract": tesseract_version(),
            "ocr_languages": list(tesseract_languages()),
        }
    }


def input_files(job: JobSpec) -> list[tuple[dict[str, Any], Path]]:
    """The job's inputs as files in its fetched input directory."""
    inputs = list(job.spec.get("inputs") or [])
    if not inputs:
        return []
    if job.dataset_dir is None:
        raise ValidationFailed("the job names inputs but carries no input directory")
    out = []
    for entry in inputs:
        path = job.dataset_dir / str(entry["name"])
        if not path.is_file() or path.is_symlink():
            raise ValidationFailed(f"file not found: {entry.get('ref')} (not in the job's inputs)")
        out.append((entry, path))
    return out


class Steps:
    """Progress in named steps (`progress.step` on the node), with cancellation polled
    between them."""

    def __init__(self, report: Reporter, prefix: str = "") -> None:
        self.report = report
        self.prefix = prefix

    def step(self, percent: float, step: str, message: str) -> None:
        if self.report.should_cancel():
            raise ExecutionCancelled()
        name = f"{self.prefix}{step}"
        self.report.progress(percent, message, {"step": name})  # type: ignore[dict-item]
        self.report.log(f"[{name}] {message}")

    def sub(self, prefix: str) -> Steps:
        return Steps(self.report, self.prefix + prefix)


def finish(out: Path, structured: dict[str, Any], assets: list[str]) -> ExecutionResult:
    """Write `result.json` and return the result the daemon pins and reports."""
    (out / "result.json").write_text(
        json.dumps(structured, ensure_ascii=False, indent=2, sort_keys=True)
    )
    artifacts = tuple(sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()))
    return ExecutionResult(
        output_dir=out,
        metrics={"structured_data": structured, "assets": sorted(assets)},
        result_type=RESULT_TYPE,
        artifacts=artifacts,
    )
