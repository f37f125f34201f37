"""The log janitor: a loop service that deletes log lines past `events.log_retention_days`
(state changes and progress stay: they are the job's history) and metric samples past
`events.metrics_retention_days`, hourly."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from node.config import NodeSettings
from node.db import session_scope
from node.jobs.events import prune_logs
from node.jobs.metrics import prune_metrics
from node.services import LoopService


class LogJanitor(LoopService):
    name = "log-janitor"
    run_at_start = True

    def __init__(self, sessions: sessionmaker[Session], settings: NodeSettings) -> None:
        super().__init__(3600.0)
        self.sessions = sessions
        self.settings = settings

    def run_once(self) -> int:
        with session_scope(self.sessions) as session:
            return prune_logs(session, self.settings.events) + prune_metrics(
                session, self.settings.events
            )
