"""The Alembic migrations create exactly the tables the models declare."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import node.models  # noqa: F401
from node.db import Base, make_engine
from node.schema import upgrade_schema


def test_migrations_match_models(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade_schema(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_is_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade_schema(engine)
    upgrade_schema(engine)
    engine.dispose()


def test_create_app_refuses_an_empty_database(settings, tmp_path) -> None:
    """A booting node never migrates (replicas would race): it names the command to run."""
    import pytest

    from node.app import create_app
    from node.schema import SchemaOutOfDate
    from tests.fixtures.db import PG_ADMIN_URL, drop_database, empty_database

    # the suite's databases are copies of a migrated one: take one no migration ran on
    empty = empty_database() if PG_ADMIN_URL else f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    try:
        with pytest.raises(SchemaOutOfDate, match="dcm db upgrade"):
            create_app(settings.model_copy(update={"database_url": empty}))
    finally:
        if PG_ADMIN_URL:
            drop_database(empty)


def test_create_app_refuses_an_old_schema(settings) -> None:
    import pytest
    from alembic import command

    from node.app import create_app
    from node.schema import SchemaOutOfDate, alembic_config

    engine = make_engine(settings.sqlalchemy_url)
    upgrade_schema(engine)
    command.downgrade(alembic_config(engine), "0012_chain_escrows-1")  # one head back
    engine.dispose()
    with pytest.raises(SchemaOutOfDate, match="Run `dcm db upgrade`"):
        create_app(settings)
    engine = make_engine(settings.sqlalchemy_url)
    upgrade_schema(engine)
    engine.dispose()
    create_app(settings)  # current again: starts


def test_dcm_db_upgrade_then_serve_checks(tmp_path) -> None:
    """`dcm serve` on a database `dcm db upgrade` has not touched stops with the message."""
    import subprocess
    import sys

    from tests.fixtures.served import REPO, dcm_env, run_dcm

    env = dcm_env(tmp_path / "node", None)
    (tmp_path / "node").mkdir()
    refused = subprocess.run(
        [sys.executable, "-m", "dcm.cli", "serve", "--port", "1"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert "dcm db upgrade" in refused.stderr
    assert "database schema at" in run_dcm(["db", "upgrade"], env)
