"""Bodies and envelopes of seed 004's dialect (`/api/jobs`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class JobSubmit(BaseModel):
    """`POST /api/jobs/`: a job type and its parameters (checked per type at submit)."""

    job_type: str = Field(max_length=64, examples=["pdf"])
    parameters: dict[str, Any] = Field(default_factory=dict)
    user_id: str | None = Field(None, max_length=256)


class BatchSubmit(BaseModel):
    batch_name: str = Field(max_length=200)
    jobs: list[JobSubmit] = Field(min_length=1, max_length=100)


class TemplateSave(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    source: str = Field(min_length=1, max_length=100_000)
    output_format: Literal["markdown", "json"] = "markdown"


class Success(BaseModel):
    """Seed 004's success envelope."""

    status: Literal["success"] = "success"
    data: dict[str, Any] | list[Any]
