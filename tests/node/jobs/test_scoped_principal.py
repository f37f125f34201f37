"""A caller holding a workspace-scoped credential (API key) reaches that workspace's jobs
and nothing else, through the service reads every dialect uses."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from marketplace.errors import Forbidden, JobNotFound
from node.auth.principal import Principal
from node.db import session_scope
from node.jobs import service
from node.jobs.repository import JobFilters
from tests.fixtures.factories import make_user, make_workspace


def test_scoped_principal_sees_only_its_workspace(app: FastAPI) -> None:
    user = make_user(app)
    ws_a = make_workspace(app, user, name="a")
    ws_b = make_workspace(app, user, name="b")
    with session_scope(app.state.runtime.sessionmaker) as session:
        in_a = service.create_job(session, job_type="t", created_by=user.id, workspace_id=ws_a)
        in_b = service.create_job(session, job_type="t", created_by=user.id, workspace_id=ws_b)
        personal = service.create_job(session, job_type="t", created_by=user.id)

        full = Principal(user_id=user.id, subject="u")
        scoped = Principal(user_id=user.id, subject="u", workspace_id=ws_a)

        def owned(p: Principal) -> set[int]:
            rows, _ = service.list_owned_jobs(
                session, p, JobFilters(), sort="created_at", order="desc", cursor=None, limit=50
            )
            return {j.id for j in rows}

        def listed(p: Principal, workspace_id: int | None) -> set[int]:
            rows, _ = service.list_workspace_jobs(
                session,
                p,
                JobFilters(),
                workspace_id=workspace_id,
                sort="created_at",
                order="desc",
                page=1,
                limit=50,
            )
            return {j.id for j in rows}

        assert owned(full) == {in_a.id, in_b.id, personal.id}
        assert owned(scoped) == {in_a.id}
        assert listed(full, None) == {in_a.id, in_b.id}
        assert listed(scoped, None) == {in_a.id}
        with pytest.raises(Forbidden):  # the service checks the role itself (the route did)
            listed(scoped, ws_b)
        assert service.get_owned_job(session, scoped, f"job_{in_a.id}").id == in_a.id
        for job in (in_b, personal):
            with pytest.raises(JobNotFound):
                service.get_owned_job(session, scoped, f"job_{job.id}")
