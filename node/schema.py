"""The database schema's version: upgrade it (`dcm db upgrade`) and check it at start.

The node never migrates while it boots: replicas starting together would race on the
migration. `dcm db upgrade` brings the database to the newest schema (all migration
heads); `dcm serve` (through `node.app.create_app`) checks the version and refuses to
start, with a message that says what to run, when the database is behind.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

import node.models  # noqa: F401  (registers every table on Base.metadata)


class SchemaOutOfDate(RuntimeError):
    """The database's schema is not the one this node's code needs."""


def alembic_config(engine: Engine) -> Any:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


@cache
def _scripts() -> ScriptDirectory:
    """The migration scripts this code ships: read once per process (alembic parses every
    revision file to build it), since they cannot change while it runs."""
    return ScriptDirectory(str(Path(__file__).parent / "migrations"))


def upgrade_schema(engine: Engine) -> None:
    """Bring the database to the newest schema (all migration heads). A database already
    there is left as it is, without running the migration environment."""
    if missing_revisions(engine):
        command.upgrade(alembic_config(engine), "heads")


def schema_revisions(engine: Engine) -> tuple[set[str], set[str]]:
    """(the revisions the database is at, the heads this code needs)."""
    heads = set(_scripts().get_heads())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    return current, heads


def missing_revisions(engine: Engine) -> set[str]:
    """The heads this code needs that the database has not reached. A head another
    migration depends on is recorded through its dependant only, so reached means: among
    the applied revisions and their ancestors."""
    script = _scripts()
    current, heads = schema_revisions(engine)
    reached = {rev.revision for rev in script.iterate_revisions(tuple(current), "base")}
    return heads - reached


def require_current_schema(engine: Engine) -> None:
    """Raise `SchemaOutOfDate` unless the database is at the newest schema."""
    if not missing_revisions(engine):
        return
    current, heads = schema_revisions(engine)
    at = ", ".join(sorted(current)) or "no schema (an empty database)"
    raise SchemaOutOfDate(
        f"The database schema is at {at}; this node needs {', '.join(sorted(heads))}. "
        "Run `dcm db upgrade` (with the same DCM_* settings) and start again."
    )
