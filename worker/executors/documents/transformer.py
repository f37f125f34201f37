"""`transformer`: a template (named on the node, or inline) rendered in Jinja2's sandbox over
given text, a previous job's structured result, or a text input file, to markdown or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from marketplace.errors import ValidationFailed
from marketplace.jobs.documents import CAPABILITIES, TRANSFORMER, TransformerParams
from marketplace.jobs.templates import TemplateFailed, render
from worker.executors.base import ExecutionResult, JobSpec, Reporter
from worker.executors.documents import common
from worker.executors.documents.common import Steps

MAX_TEXT_BYTES = 20 * 1024 * 1024


def read_text(path: Path) -> str:
    data = path.read_bytes()[:MAX_TEXT_BYTES]
    if data.startswith(b"%PDF"):
        raise ValidationFailed(
            f"{path.name} is a PDF: run a pdf job and transform its result (source_job_id)"
        )
    return data.decode("utf-8", errors="replace")


class TransformerHandler:
    JOB_TYPE: ClassVar[str] = TRANSFORMER
    PARAMS: ClassVar[type[TransformerParams]] = TransformerParams
    CAPABILITIES: ClassVar[tuple[str, ...]] = CAPABILITIES[TRANSFORMER]
    job_types: ClassVar[frozenset[str]] = frozenset({TRANSFORMER})

    def missing(self) -> str | None:
        return common.missing_tools(self.CAPABILITIES)

    def run(self, job: JobSpec, workdir: Path, report: Reporter) -> ExecutionResult:
        params = TransformerParams.model_validate(job.spec.get("settings") or {})
        steps = Steps(report)
        steps.step(5, "input", "Reading the input")
        data: dict[str, Any] = dict(job.spec.get("input_data") or {})
        text = params.text
        files = common.input_files(job)
        if files:
            text = read_text(files[0][1])
        if text is None:
            text = str(data.get("extracted_text", ""))
        source = job.spec.get("template_source") or params.template_source
        if not source:
            raise ValidationFailed("the job carries no template")
        fmt = job.spec.get("template_format") or params.output_format
        steps.step(40, "render", f"Rendering the template to {fmt}")
        context = {
            "text": text,
            "data": data,
            "metadata": data.get("metadata", {}),
            "pages": data.get("pages", []),
        }
        try:
            output = render(source, context, fmt)
        except TemplateFailed as exc:
            raise ValidationFailed(str(exc)) from None
        out = workdir / "result"
        out.mkdir(parents=True, exist_ok=True)
        if fmt == "json":
            (out / "output.json").write_text(json.dumps(output, ensure_ascii=False, indent=2))
        else:
            (out / "output.md").write_text(str(output))
        steps.step(95, "completed", "Template rendered")
        structured = {"output": output, "format": fmt}
        if params.template:
            structured["template"] = params.template
        return common.finish(out, structured, [])
