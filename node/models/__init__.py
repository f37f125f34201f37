"""Imports every domain's ORM models so that `Base.metadata` knows all tables
(used by Alembic and by `node.schema`). Add a line per new models module."""

from node.models.auth import ApiKey, RefreshToken, SiweNonce, User  # noqa: F401
from node.models.content import MfsRoot, Pin  # noqa: F401
from node.models.documents import TransformerTemplate  # noqa: F401
from node.models.escrow import ChainCursor, ChainEscrow, ChainEvent, ChainOutbox  # noqa: F401
from node.models.jobs import Job, JobBatch, JobEvent, JobTemplate  # noqa: F401
from node.models.metrics import JobMetric  # noqa: F401
from node.models.providers import Provider, ProviderAdmission  # noqa: F401
from node.models.webhooks import Webhook, WebhookDelivery  # noqa: F401
from node.models.workspaces import PersonalWorkspace, Workspace, WorkspaceMember  # noqa: F401
