"""SQL of the document jobs dialect: templates, batches and cached results."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, raiseload

from marketplace.jobs.states import JobStatus
from node.models.documents import TransformerTemplate
from node.models.jobs import Job
from node.models.providers import Provider

CACHE_SCAN = 500


def template(session: Session, workspace_id: int, name: str) -> TransformerTemplate | None:
    return session.scalars(
        select(TransformerTemplate).where(
            TransformerTemplate.workspace_id == workspace_id, TransformerTemplate.name == name
        )
    ).first()


def templates(session: Session, workspace_id: int) -> Sequence[TransformerTemplate]:
    return session.scalars(
        select(TransformerTemplate)
        .where(TransformerTemplate.workspace_id == workspace_id)
        .order_by(TransformerTemplate.name)
    ).all()


def batch_jobs(session: Session, batch_id: str) -> Sequence[Job]:
    return session.scalars(
        select(Job).where(Job.batch_id == batch_id).order_by(Job.id).options(raiseload(Job.events))
    ).all()


def completed_of_type(session: Session, workspace_id: int, job_type: str) -> Sequence[Job]:
    """The newest completed jobs of a type in a workspace (candidates for a cached result)."""
    return session.scalars(
        select(Job)
        .where(
            Job.workspace_id == workspace_id,
            Job.job_type == job_type,
            Job.status == JobStatus.COMPLETED.value,
        )
        .order_by(Job.id.desc())
        .limit(CACHE_SCAN)
        .options(raiseload(Job.events))
    ).all()


def job_types_on_offer(session: Session) -> set[str]:
    """Every job type some registered provider advertises."""
    out: set[str] = set()
    for types in session.scalars(select(Provider.job_types)).all():
        out.update(types or ())
    return out
