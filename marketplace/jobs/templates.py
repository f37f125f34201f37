"""Transformer templates: Jinja2 in its sandbox, shared by the node (which checks a template
when it is stored) and the provider (which renders it).

A template sees `text` (the input text), `data` (a previous job's structured result, or
`{}`), `metadata` (the document's metadata, if any) and `pages` (per-page text). The sandbox
refuses attribute access to internals (`__class__`...), so a template can only read the
data it is given. Output: the rendered text (markdown), or, for `json`, the rendered text
parsed as JSON (an error names the template if it is not JSON).
"""

from __future__ import annotations

import json
from typing import Any

from marketplace.errors import InvalidField

MAX_OUTPUT_CHARS = 5_000_000


def _env() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(autoescape=False, undefined=StrictUndefined, trim_blocks=True)


def check_template(source: str, field: str = "source") -> None:
    """Refuse (422 naming `field`) a template that does not parse."""
    from jinja2 import TemplateSyntaxError

    try:
        _env().parse(source)
    except TemplateSyntaxError as exc:
        raise InvalidField(
            f"{field}: template syntax error at line {exc.lineno}: {exc.message}",
            details={"field": field},
        ) from None


class TemplateFailed(Exception):
    """The template could not be rendered over this input (the job's own fault)."""


def render(source: str, context: dict[str, Any], output_format: str = "markdown") -> Any:
    """Render `source` over `context` in the sandbox; JSON output is parsed."""
    from jinja2 import TemplateError
    from jinja2.sandbox import SecurityError

    env = _env()
    env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
    try:
        out = env.from_string(source).render(**context)
    except SecurityError as exc:
        raise TemplateFailed(f"template refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise TemplateFailed(f"template error: {exc}") from None
    if len(out) > MAX_OUTPUT_CHARS:
        raise TemplateFailed(f"template output over {MAX_OUTPUT_CHARS} characters")
    if output_format == "json":
        try:
            return json.loads(out)
        except json.JSONDecodeError as exc:
            raise TemplateFailed(f"template output is not JSON: {exc}") from None
    return out
