"""Seed 004's document handlers behind the one `Executor` interface: `pdf` (text layer with
pypdf, OCR with Debian's Tesseract, page images with poppler's `pdftoppm`, metadata),
`transformer` (Jinja2's sandbox over text or a previous result) and `session` (several
documents of one event session into one result, each step reported).

Each handler module declares its `JOB_TYPE`, the `PARAMS` model the node validated the job
against (`marketplace.jobs.documents`) and the `CAPABILITIES` it needs; `missing()` says
what this machine lacks, so the daemon advertises only the handlers it can run. Inputs are
the job's `folder_cid` directory (fetched and verified by the daemon as a dataset), one file
per entry of `spec["inputs"]`. Output: `result.json` (the structured result), the text,
`pages/page-NNN.png` and any rendered template, pinned as the job's result directory.
"""

from __future__ import annotations

from typing import Any

from worker.executors.documents.pdf import PdfHandler
from worker.executors.documents.session import SessionHandler
from worker.executors.documents.transformer import TransformerHandler

HANDLERS = (PdfHandler, TransformerHandler, SessionHandler)

__all__ = ["HANDLERS", "PdfHandler", "SessionHandler", "TransformerHandler", "document_executors"]


def document_executors() -> dict[str, Any]:
    """Job type -> handler instance, for every document handler."""
    return {h.JOB_TYPE: h() for h in HANDLERS}
