"""`pdf`: text (native text layer, Tesseract OCR, or both page by page), page images and
document metadata of one PDF; optionally a transformer template over the result."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any, ClassVar

from marketplace.errors import ValidationFailed
from marketplace.jobs.documents import CAPABILITIES, PDF, PdfParams
from marketplace.jobs.templates import TemplateFailed, render
from worker.executors.base import ExecutionResult, JobSpec, Reporter
from worker.executors.documents import common
from worker.executors.documents.common import TOOL_TIMEOUT, Steps

# A page whose text layer has fewer visible characters than this is treated as scanned
# (`combined` takes its OCR text).
MIN_NATIVE_CHARS = 16


def _visible(text: str) -> int:
    return sum(1 for c in text if not c.isspace())


def read_pdf(path: Path, max_pages: int) -> tuple[list[str], dict[str, Any]]:
    """Per-page text layer and the document's metadata (`ValidationFailed` if not a PDF)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise ValidationFailed(f"{path.name}: the PDF is encrypted")
        pages = reader.pages[:max_pages]
        texts = [(p.extract_text() or "") for p in pages]
        info: Any = reader.metadata or {}
        meta: dict[str, Any] = {
            k.lstrip("/").lower(): str(v)
            for k, v in dict(info).items()
            if isinstance(k, str) and v is not None
        }
        meta.update(
            page_count=len(reader.pages),
            pages_processed=len(texts),
            pdf_version=reader.pdf_header.removeprefix("%PDF-"),
            file_size=path.stat().st_size,
        )
        return texts, meta
    except PdfReadError as exc:
        raise ValidationFailed(f"{path.name} is not a readable PDF: {exc}") from None
    except (ValueError, KeyError, TypeError) as exc:  # malformed structures
        raise ValidationFailed(f"{path.name} is not a readable PDF: {exc}") from None


def render_pages(path: Path, out: Path, dpi: int, count: int) -> list[Path]:
    """Each page as `page-NNN.png` (poppler's pdftoppm)."""
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / "raw"
    proc = subprocess.run(
        [
            shutil.which("pdftoppm") or "pdftoppm",
            "-r",
            str(dpi),
            "-png",
            "-f",
            "1",
            "-l",
            str(count),
            str(path),
            str(prefix),
        ],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
    )
    if proc.returncode != 0:
        raise ValidationFailed(f"{path.name}: pages could not be rendered: {proc.stderr[:300]}")
    raw = sorted(out.glob("raw-*.png"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    pages = []
    for i, page in enumerate(raw, start=1):
        final = out / f"page-{i:03d}.png"
        page.rename(final)
        pages.append(final)
    return pages


def ocr(image: Path, language: str) -> str:
    proc = subprocess.run(
        [shutil.which("tesseract") or "tesseract", str(image), "stdout", "-l", language],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
    )
    if proc.returncode != 0:
        raise ValidationFailed(f"OCR failed on {image.name}: {proc.stderr.strip()[:300]}")
    return proc.stdout.strip()


def extract(
    path: Path,
    params: PdfParams | Any,
    out: Path,
    steps: Steps,
    span: tuple[float, float] = (0.0, 90.0),
) -> tuple[dict[str, Any], list[str]]:
    """The structured result of one PDF and its assets (paths relative to `out`'s parent
    result directory are the caller's business: here relative to `out`)."""
    lo, hi = span
    method = params.extraction_method
    steps.step(lo, "native", f"Reading {path.name}")
    native, meta = read_pdf(path, getattr(params, "max_pages", 200))
    count = len(native)
    need_images = method in ("ocr", "combined") or params.page_images
    images: list[Path] = []
    if need_images:
        steps.step(lo + (hi - lo) * 0.2, "render", f"Rendering {count} page(s) at {params.dpi} dpi")
        images = render_pages(path, out / "pages", params.dpi, count)
    ocr_texts: list[str | None] = [None] * count
    if method in ("ocr", "combined"):
        for i, image in enumerate(images[:count]):
            if method == "combined" and _visible(native[i]) >= MIN_NATIVE_CHARS:
                continue  # the text layer has this page
            pct = lo + (hi - lo) * (0.3 + 0.7 * i / max(count, 1))
            steps.step(pct, "ocr", f"OCR of page {i + 1} of {count}")
            ocr_texts[i] = ocr(image, params.language)
    pages = []
    for i in range(count):
        if method == "native":
            text, source = native[i], "native"
        elif method == "ocr":
            text, source = ocr_texts[i] or "", "ocr"
        else:
            use_ocr = ocr_texts[i] is not None
            text, source = (ocr_texts[i] or "", "ocr") if use_ocr else (native[i], "native")
        page: dict[str, Any] = {"page": i + 1, "text": text, "source": source}
        if method != "ocr":
            page["native_text"] = native[i]
        if ocr_texts[i] is not None:
            page["ocr_text"] = ocr_texts[i]
        if params.page_images and i < len(images):
            page["image"] = f"pages/{images[i].name}"
        pages.append(page)
    if not params.page_images:
        shutil.rmtree(out / "pages", ignore_errors=True)
    extracted = "\n\n".join(p["text"].strip() for p in pages if p["text"].strip())
    meta["extraction_method"] = method
    meta["text_contents"] = [{"page": p["page"], "source": p["source"]} for p in pages]
    structured = {"extracted_text": extracted, "metadata": meta, "pages": pages}
    assets = [p["image"] for p in pages if "image" in p]
    (out / "text.md").write_text(extracted + "\n")
    return structured, assets


def apply_template(
    source: str, fmt: str, structured: dict[str, Any], out: Path, steps: Steps, pct: float
) -> Any:
    steps.step(pct, "template", "Applying the template")
    context = {
        "text": structured.get("extracted_text", ""),
        "data": structured,
        "metadata": structured.get("metadata", {}),
        "pages": structured.get("pages", []),
    }
    try:
        rendered = render(source, context, fmt)
    except TemplateFailed as exc:
        raise ValidationFailed(str(exc)) from None
    if fmt == "json":
        import json

        (out / "transformed.json").write_text(json.dumps(rendered, ensure_ascii=False, indent=2))
    else:
        (out / "transformed.md").write_text(str(rendered))
    return rendered


class PdfHandler:
    JOB_TYPE: ClassVar[str] = PDF
    PARAMS: ClassVar[type[PdfParams]] = PdfParams
    CAPABILITIES: ClassVar[tuple[str, ...]] = CAPABILITIES[PDF]
    job_types: ClassVar[frozenset[str]] = frozenset({PDF})

    def missing(self) -> str | None:
        return common.missing_tools(self.CAPABILITIES)

    def capabilities(self) -> dict[str, Any]:
        return common.capabilities()

    def run(self, job: JobSpec, workdir: Path, report: Reporter) -> ExecutionResult:
        params = PdfParams.model_validate(job.spec.get("settings") or {})
        steps = Steps(report)
        ((_entry, path),) = common.input_files(job)
        out = workdir / "result"
        out.mkdir(parents=True, exist_ok=True)
        structured, assets = extract(path, params, out, steps)
        source = job.spec.get("template_source")
        if source:
            fmt = job.spec.get("template_format") or "markdown"
            structured["transformed"] = apply_template(source, fmt, structured, out, steps, 92)
        steps.step(95, "completed", "Extraction finished")
        return common.finish(out, structured, assets)
