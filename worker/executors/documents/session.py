"""`session`: the documents of one event session (PDFs and texts) into one structured result
and archive: each PDF through the `pdf` handler's steps, texts read as they are, then the
session's template if any. Each step is reported as `progress.step`
(`doc1:native`, `doc1:ocr`, ..., `template`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from marketplace.jobs.documents import CAPABILITIES, SESSION, SessionParams
from worker.executors.base import ExecutionResult, JobSpec, Reporter
from worker.executors.documents import common
from worker.executors.documents.common import Steps
from worker.executors.documents.pdf import apply_template, extract
from worker.executors.documents.transformer import read_text


class SessionHandler:
    JOB_TYPE: ClassVar[str] = SESSION
    PARAMS: ClassVar[type[SessionParams]] = SessionParams
    CAPABILITIES: ClassVar[tuple[str, ...]] = CAPABILITIES[SESSION]
    job_types: ClassVar[frozenset[str]] = frozenset({SESSION})

    def missing(self) -> str | None:
        return common.missing_tools(self.CAPABILITIES)

    def capabilities(self) -> dict[str, Any]:
        return common.capabilities()

    def run(self, job: JobSpec, workdir: Path, report: Reporter) -> ExecutionResult:
        params = SessionParams.model_validate(job.spec.get("settings") or {})
        steps = Steps(report)
        files = common.input_files(job)
        out = workdir / "result"
        out.mkdir(parents=True, exist_ok=True)
        documents: list[dict[str, Any]] = []
        assets: list[str] = []
        share = 85.0 / max(len(files), 1)
        for i, (entry, path) in enumerate(files):
            lo = 5 + i * share
            doc_dir = out / "documents" / entry["name"]
            doc_dir.mkdir(parents=True, exist_ok=True)
            sub = steps.sub(f"doc{i + 1}:")
            if path.read_bytes()[:5] == b"%PDF-":
                structured, doc_assets = extract(path, params, doc_dir, sub, (lo, lo + share))
                assets += [f"documents/{entry['name']}/{a}" for a in doc_assets]
                kind = "pdf"
            else:
                sub.step(lo, "text", f"Reading {entry['ref']}")
                text = read_text(path)
                (doc_dir / "text.md").write_text(text)
                structured = {"extracted_text": text, "metadata": {"size": path.stat().st_size}}
                kind = "text"
            documents.append(
                {"name": entry["name"], "source": entry["ref"], "kind": kind, **structured}
            )
        result: dict[str, Any] = {
            "session_name": params.session_name,
            "document_count": len(documents),
            "documents": documents,
            "extracted_text": "\n\n".join(
                f"## {d['source']}\n\n{d['extracted_text'].strip()}" for d in documents
            ),
            "metadata": {"documents": [d["metadata"] for d in documents]},
        }
        source = job.spec.get("template_source")
        if source:
            fmt = job.spec.get("template_format") or "markdown"
            result["transformed"] = apply_template(source, fmt, result, out, steps, 92)
        (out / "text.md").write_text(result["extracted_text"] + "\n")
        steps.step(95, "completed", f"{len(documents)} document(s) processed")
        return common.finish(out, result, assets)
