"""The document handlers on real tools (pypdf, Tesseract, pdftoppm, Jinja2's sandbox), called
as the daemon calls them: `run(job, workdir, reporter)` over a job's input directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from marketplace.errors import ValidationFailed
from marketplace.jobs.documents import parse_params
from tests.fixtures.documents import SCANNED_TEXT, TEXT_PAGE_LINES, mixed_pdf, words
from tests.fixtures.engines import require_engine
from worker.executors.base import JobSpec, RecordingReporter
from worker.executors.documents import HANDLERS, PdfHandler, SessionHandler, TransformerHandler


@pytest.fixture(autouse=True)
def _tools() -> None:
    for handler in HANDLERS:
        problem = handler().missing()
        require_engine(problem is None, problem or "")


def _job(job_type: str, params: dict[str, Any], inputs: Path | None, **extra: Any) -> JobSpec:
    settings = parse_params(job_type, params).model_dump(mode="json", exclude={"webhook"})
    names = sorted(p.name for p in inputs.iterdir()) if inputs else []
    spec = {
        "settings": settings,
        "inputs": [{"ref": f"ipfs://x/{n}", "name": n} for n in names],
        **extra,
    }
    return JobSpec(job_id="job_1", attempt=1, job_type=job_type, spec=spec, dataset_dir=inputs)


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    mixed_pdf(folder / "00-minutes.pdf")
    return folder


def test_native_reads_the_text_layer_only(inputs: Path, tmp_path: Path) -> None:
    job = _job("pdf", {"filename": "x", "extraction_method": "native"}, inputs)
    rep = RecordingReporter()
    result = PdfHandler().run(job, tmp_path / "w", rep)
    data = result.metrics["structured_data"]
    assert [p["source"] for p in data["pages"]] == ["native", "native"]
    assert TEXT_PAGE_LINES[0] in data["pages"][0]["text"]
    assert data["pages"][1]["text"].strip() == ""  # the scan has no text layer
    meta = data["metadata"]
    assert meta["page_count"] == 2 and meta["title"] == "Board minutes"
    assert result.metrics["assets"] == ["pages/page-001.png", "pages/page-002.png"]
    assert (result.output_dir / "pages" / "page-002.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((result.output_dir / "result.json").read_text()) == data
    steps = [m.get("step") for _p, _msg, m in rep.progress_calls]
    assert steps[:2] == ["native", "render"]


def test_ocr_reads_what_was_drawn_on_the_scanned_page(inputs: Path, tmp_path: Path) -> None:
    job = _job("pdf", {"filename": "x", "extraction_method": "ocr", "page_images": False}, inputs)
    result = PdfHandler().run(job, tmp_path / "w", RecordingReporter())
    data = result.metrics["structured_data"]
    scanned = words(data["pages"][1]["text"])
    for line in SCANNED_TEXT:
        assert words(line) <= scanned, (line, data["pages"][1]["text"])
    assert words(TEXT_PAGE_LINES[1]) <= words(data["pages"][0]["text"])
    assert result.metrics["assets"] == [] and not (result.output_dir / "pages").exists()


def test_combined_takes_the_text_layer_and_ocrs_only_the_scan(inputs: Path, tmp_path: Path) -> None:
    job = _job("pdf", {"filename": "x", "extraction_method": "combined"}, inputs)
    rep = RecordingReporter()
    data = PdfHandler().run(job, tmp_path / "w", rep).metrics["structured_data"]
    assert [p["source"] for p in data["pages"]] == ["native", "ocr"]
    assert TEXT_PAGE_LINES[0] in data["extracted_text"]
    assert words(SCANNED_TEXT[0]) <= words(data["extracted_text"])
    assert sum(1 for _p, _m, x in rep.progress_calls if x.get("step") == "ocr") == 1


def test_a_template_over_the_pdf_result(inputs: Path, tmp_path: Path) -> None:
    src = (
        "# {{ metadata.title }}\n"
        "{% for p in pages %}- page {{ p.page }}: {{ p.source }}\n{% endfor %}"
    )
    job = _job("pdf", {"filename": "x"}, inputs, template_source=src, template_format="markdown")
    result = PdfHandler().run(job, tmp_path / "w", RecordingReporter())
    out = result.metrics["structured_data"]["transformed"]
    assert out.startswith("# Board minutes") and "- page 2: native" in out
    assert (result.output_dir / "transformed.md").read_text() == out


def test_not_a_pdf_fails_the_job_not_the_provider(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "00-x.pdf").write_bytes(b"hello, not a pdf")
    job = _job("pdf", {"filename": "x"}, folder)
    with pytest.raises(ValidationFailed, match="not a readable PDF"):
        PdfHandler().run(job, tmp_path / "w", RecordingReporter())


def test_transformer_renders_json_and_the_sandbox_refuses_internals(tmp_path: Path) -> None:
    params = {
        "template_source": (
            '{"title": {{ data.metadata.title | tojson }}, "n": {{ data.pages | length }}}'
        ),
        "source_job_id": "job_1",
        "output_format": "json",
    }
    data = {"metadata": {"title": "Board"}, "pages": [{}, {}]}
    job = _job(
        "transformer", params, None, input_data=data, template_source=params["template_source"]
    )
    result = TransformerHandler().run(job, tmp_path / "w", RecordingReporter())
    assert result.metrics["structured_data"]["output"] == {"title": "Board", "n": 2}
    evil = "{{ text.__class__.__mro__[1].__subclasses__() }}"
    job = _job("transformer", {"template_source": evil, "text": "x"}, None, template_source=evil)
    with pytest.raises(ValidationFailed, match="sandbox|unsafe|template error"):
        TransformerHandler().run(job, tmp_path / "w2", RecordingReporter())


def test_session_processes_every_document_step_by_step(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    mixed_pdf(folder / "00-minutes.pdf")
    mixed_pdf(folder / "01-annex.pdf", lines=("Annex one",), scanned=("ROOF 2026",))
    (folder / "02-notes.txt").write_text("Speaker notes: thank the volunteers")
    params = {
        "documents": ["a", "b", "c"],
        "session_name": "Board 2026",
        "extraction_method": "combined",
    }
    rep = RecordingReporter()
    result = SessionHandler().run(_job("session", params, folder), tmp_path / "w", rep)
    data = result.metrics["structured_data"]
    assert data["document_count"] == 3 and [d["kind"] for d in data["documents"]] == [
        "pdf",
        "pdf",
        "text",
    ]
    assert words("ROOF 2026") <= words(data["documents"][1]["extracted_text"])
    assert "thank the volunteers" in data["extracted_text"]
    steps = [m.get("step") for _p, _msg, m in rep.progress_calls]
    for i in (1, 2):
        assert f"doc{i}:native" in steps and f"doc{i}:ocr" in steps
    assert "doc3:text" in steps
    assert steps.index("doc1:native") < steps.index("doc2:native") < steps.index("doc3:text")
