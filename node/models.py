"""Imports every domain's ORM models so that `Base.metadata` knows all tables
(used by Alembic and by `upgrade_schema`). Add a line per new models module."""

from node.auth.models import RefreshToken, User  # noqa: F401
from node.content.models import Pin  # noqa: F401
from node.jobs.models import Job, JobEvent  # noqa: F401
from node.workspaces.models import Workspace, WorkspaceMember  # noqa: F401
