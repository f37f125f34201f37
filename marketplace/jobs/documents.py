"""Seed 004's document job types (`pdf`, `transformer`, `session`): what each takes, what a
provider must have to run it, where its inputs may come from, and its status words.

The node validates a job's `parameters` against these models at submit (a 422 naming the
bad field); the provider's handlers (`worker.executors.documents`) read the same models,
so both sides agree on every field and default.

Inputs (`filename`, `documents[]`) are one of
- `ipfs://<cid>/<path>` or `/ipfs/<cid>/<path>` (a file in the node's content store);
- an absolute path under the input directory the node operator configures
  (`DCM_JOBS_INPUT_DIR`): the node adds the file to its store at submit.
Either way the node copies the inputs into one pinned UnixFS directory (the job's
`folder_cid`), which the provider fetches and verifies like a dataset; the job's spec names
each input's file there (`inputs[]`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from marketplace.errors import InvalidField
from marketplace.jobs.states import JobStatus

PDF, TRANSFORMER, SESSION = "pdf", "transformer", "session"
JOB_TYPES = (PDF, TRANSFORMER, SESSION)

# What a provider checks at start before it advertises each handler.
CAPABILITIES: dict[str, tuple[str, ...]] = {
    PDF: ("pypdf", "tesseract", "pdftoppm"),
    TRANSFORMER: ("jinja2",),
    SESSION: ("pypdf", "tesseract", "pdftoppm", "jinja2"),
}

# Extraction methods that need a service no provider here has: refused at submit.
UNAVAILABLE_METHODS = {
    "mistral_ocr_with_pages": "needs a Mistral OCR account, which no provider of this "
    "marketplace has; use native, ocr or combined",
}

Ref = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
TemplateName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class Webhook(BaseModel):
    """`parameters.webhook`: where progress and the final result are posted."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: Annotated[str, StringConstraints(min_length=8, max_length=2048)]
    token: Annotated[str, StringConstraints(max_length=512)] | None = None
    job_id: Annotated[str, StringConstraints(max_length=256)] | None = Field(None, alias="jobId")


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    webhook: Webhook | None = None
    use_cache: bool = False


class PdfParams(_Params):
    filename: Ref
    extraction_method: Literal["native", "ocr", "combined", "mistral_ocr_with_pages"] = "native"
    template: TemplateName | None = None
    page_images: bool = True
    dpi: int = Field(150, ge=50, le=400)
    language: Annotated[str, StringConstraints(pattern=r"^[a-z_]{3,16}(\+[a-z_]{3,16})*$")] = "eng"
    max_pages: int = Field(200, ge=1, le=2000)


class TransformerParams(_Params):
    template: TemplateName | None = None
    template_source: Annotated[str, StringConstraints(max_length=100_000)] | None = None
    text: Annotated[str, StringConstraints(max_length=5_000_000)] | None = None
    source_job_id: Annotated[str, StringConstraints(max_length=32)] | None = None
    filename: Ref | None = None
    output_format: Literal["markdown", "json"] = "markdown"


class SessionParams(_Params):
    session_name: Annotated[str, StringConstraints(max_length=200)] | None = None
    documents: list[Ref] = Field(min_length=1, max_length=50)
    extraction_method: Literal["native", "ocr", "combined", "mistral_ocr_with_pages"] = "combined"
    template: TemplateName | None = None
    page_images: bool = False
    dpi: int = Field(150, ge=50, le=400)
    language: Annotated[str, StringConstraints(pattern=r"^[a-z_]{3,16}(\+[a-z_]{3,16})*$")] = "eng"


PARAMS: dict[str, type[_Params]] = {
    PDF: PdfParams,
    TRANSFORMER: TransformerParams,
    SESSION: SessionParams,
}


def parse_params(job_type: str, raw: dict[str, Any]) -> _Params:
    """The parameters of a `job_type` job, or `InvalidField` (422) naming the first bad field
    as `parameters.<path>`."""
    model = PARAMS.get(job_type)
    if model is None:
        raise InvalidField(
            f"Unknown job_type {job_type!r}; supported: {', '.join(JOB_TYPES)}",
            details={"field": "job_type"},
        )
    try:
        params = model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(["parameters", *(str(p) for p in err["loc"])])
        raise InvalidField(f"{field}: {err['msg']}", details={"field": field}) from None
    method = getattr(params, "extraction_method", None)
    if method in UNAVAILABLE_METHODS:
        raise InvalidField(
            f"parameters.extraction_method {method!r} is not offered: "
            + UNAVAILABLE_METHODS[method],
            details={"field": "parameters.extraction_method"},
        )
    if isinstance(params, TransformerParams):
        if (params.template is None) == (params.template_source is None):
            raise InvalidField(
                "parameters.template: give exactly one of template (a stored template's "
                "name) and template_source (an inline template)",
                details={"field": "parameters.template"},
            )
        given = [x for x in (params.text, params.source_job_id, params.filename) if x is not None]
        if len(given) != 1:
            raise InvalidField(
                "parameters.text: give exactly one of text, source_job_id and filename",
                details={"field": "parameters.text"},
            )
    return params


_IPFS_REF = re.compile(r"^(?:ipfs://|/ipfs/)([A-Za-z0-9]{46,128})(?:/(.*))?$")


def ipfs_ref(ref: str) -> tuple[str, str] | None:
    """`(cid, path)` of an `ipfs://<cid>/<path>` or `/ipfs/<cid>/<path>` reference, else
    None (a local path)."""
    m = _IPFS_REF.match(ref)
    if m is None:
        return None
    return m.group(1), (m.group(2) or "").strip("/")


# Seed 004 knows four words.
SEED004_WORD: dict[JobStatus, str] = {
    JobStatus.AWAITING_FUNDING: "pending",
    JobStatus.PENDING: "pending",
    JobStatus.CLAIMED: "pending",
    JobStatus.RUNNING: "processing",
    JobStatus.SUBMITTED: "processing",
    JobStatus.DISPUTED: "processing",
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.EXPIRED: "failed",
    JobStatus.CANCELLED: "failed",
}


def seed004_word(status: JobStatus | str) -> str:
    return SEED004_WORD[JobStatus(status)]
