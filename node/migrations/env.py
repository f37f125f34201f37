"""Alembic environment: runs on the engine handed in by `node.schema.upgrade_schema`
(or built from DCM_DATABASE_URL when alembic is run by hand).

On PostgreSQL the migration transaction first takes an advisory lock: `dcm db upgrade`
run by several replicas (or deploy jobs) at once migrates once, the others wait for it
and then find nothing left to do."""

from alembic import context
from sqlalchemy import text

import node.models  # noqa: F401
from node.config import NodeSettings
from node.db import Base, make_engine

config = context.config
engine = config.attributes.get("engine") or make_engine(NodeSettings().sqlalchemy_url)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            from node.replicas import MIGRATION_KEY

            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_KEY})
        context.run_migrations()
    connection.commit()
