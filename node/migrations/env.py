"""Alembic environment: runs on the engine handed in by `node.schema.upgrade_schema`
(or built from DCM_DATABASE_URL when alembic is run by hand)."""

from alembic import context

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
        context.run_migrations()
    connection.commit()
