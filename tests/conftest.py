"""Shared fixtures: node settings on a temp data dir, the app on a fresh database
(SQLite, or PostgreSQL when DCM_TEST_DATABASE_URL is set) and a test client."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from node.config import NodeSettings
from tests.fixtures.app import create_app, migrate
from tests.fixtures.db import PG_ADMIN_URL, PostgresTemplates
from tests.fixtures.passwords import use_cheap_password_hashing


def pytest_runtest_setup(item: pytest.Item) -> None:
    """`@pytest.mark.postgres`: what only PostgreSQL can show (row locks, ...) runs in the
    PostgreSQL pass of scripts/test.sh (DCM_TEST_DATABASE_URL), and skips in the SQLite one."""
    if item.get_closest_marker("postgres") is not None and not PG_ADMIN_URL:
        pytest.skip("PostgreSQL only: runs when DCM_TEST_DATABASE_URL is set")


# What reaches the database a test runs on: the PostgreSQL pass keeps only the tests that
# ask for one of these (or are marked `postgres`); the rest would run there as they did on
# SQLite, minutes of the suite spent twice for nothing.
DATABASE_FIXTURES = frozenset({"database_url", "pg_templates", "empty_database_url"})
# An end-to-end test (whole processes: node, providers, chain) runs again on PostgreSQL only
# when marked `both_databases`: where the database changes what it shows (a node restarted
# or killed on its database, leases running out, long polls woken by LISTEN/NOTIFY, the
# main flow on the compose stack's PostgreSQL and Hardhat). The rest repeat, through
# processes, SQL that tests/node already runs on both databases: half of the PostgreSQL
# pass's time (550 of 1,200 worker-seconds), for what the provider side does.
E2E = "tests/e2e/"


def _long(item: pytest.Item) -> bool:
    return item.get_closest_marker("slow") is not None or item.nodeid.startswith(E2E)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Long tests go first, so that the parallel workers end together rather than one
    finishing a minutes-long test alone; in the PostgreSQL pass, only the tests that reach
    a database stay (of the end-to-end ones, those marked `both_databases`)."""
    items.sort(key=lambda item: not _long(item))  # stable: the rest keep their order
    if not PG_ADMIN_URL:
        return
    keep, drop = [], []
    for item in items:
        uses_db = bool(DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ())))
        if item.nodeid.startswith(E2E):
            uses_db = uses_db and item.get_closest_marker("both_databases") is not None
        (keep if uses_db or item.get_closest_marker("postgres") else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def _cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap Argon2 parameters for every test (see tests/fixtures/passwords.py); the
    production cost keeps its own test."""
    use_cheap_password_hashing(monkeypatch)


@pytest.fixture(scope="session")
def pg_templates() -> Iterator[PostgresTemplates | None]:
    if not PG_ADMIN_URL:
        yield None
        return
    templates = PostgresTemplates()
    yield templates
    templates.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per test process, copied for each test (as PostgreSQL's
    databases are cloned from a migrated template): migrating costs half a second a test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "node.sqlite3"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(
    pg_templates: PostgresTemplates | None, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    if pg_templates is None:
        path = tmp_path / "node.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = pg_templates.fresh()
    yield url
    pg_templates.drop(url)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> NodeSettings:
    return NodeSettings(
        data_dir=tmp_path / "node",
        database_url=database_url,
        environment="development",
        public_url="http://testserver",
    )


@pytest.fixture
def app(settings: NodeSettings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c
