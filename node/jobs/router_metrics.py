"""`GET /v1/jobs/{jobId}/metrics?period=1h&resolution=1m`: a job's resource series and
training epochs (`node.jobs.metrics.series`), in seed 003's shape inside the /v1
envelope: `{"success": true, "data": {"cpu", "memory", "network": {"rx", "tx"}, "gpu",
"training", ...}}`. Who may read the job may read these (404 otherwise); a malformed
period or resolution is 400 `INVALID_QUERY`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from marketplace.errors import BadQuery, JobNotFound
from node.auth.deps import PrincipalDep
from node.deps import SessionDep
from node.jobs import metrics, service
from node.jobs.schemas import JobMetricsEnvelopeV1
from node.openapi import raises

router = APIRouter(prefix="/v1/jobs", tags=["jobs (seed 002: canonical /v1)"])


@router.get("/{jobId}/metrics", response_model=JobMetricsEnvelopeV1)
@raises(BadQuery, JobNotFound)
def job_metrics(
    job_id: Annotated[str, Path(alias="jobId", description="e.g. job_5")],
    principal: PrincipalDep,
    session: SessionDep,
    period: Annotated[
        str, Query(max_length=16, description="The window: 1h, 6h, 24h, 7d (<n>s|m|h|d)")
    ] = "1h",
    resolution: Annotated[
        str, Query(max_length=16, description="One point per: 1m, 5m, 1h (<n>s|m|h|d)")
    ] = "1m",
) -> JobMetricsEnvelopeV1:
    """The job's CPU, memory, network and GPU series downsampled to `resolution` over the
    last `period` (of its run, once it ended), and its per-epoch training metrics."""
    metrics.window(period, resolution)  # a bad query is 400 before the job is looked up
    job = service.get_owned_job(session, principal, job_id, with_events=False)
    return JobMetricsEnvelopeV1(data=metrics.series(session, job, period, resolution))
