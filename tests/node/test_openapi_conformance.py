"""The node against its own `/openapi.json`, with schemathesis (in process, over ASGI).

Every operation gets the schemathesis examples, coverage and fuzzing phases with a bounded
number of generated cases, once per credential: none (every operation), then on the
operations that take a credential, a password user's token (owner of a workspace holding
a job) and a member API key of that workspace, and on the provider operations a
registered provider's wallet token. The checks: no 5xx, every status is declared for its
operation, and a declared response matches its media type, its schema and its required
headers. Generation is derandomized with a fixed seed, so CI sees the same cases every
run.

It runs in the SQLite pass of `make test` only (about two minutes on two cores): the
PostgreSQL pass would repeat it for the same document and routes (it was run there once,
with the same result). Run alone: `pytest tests/node/test_openapi_conformance.py`;
`OPENAPI_MAX_EXAMPLES=60` fuzzes deeper (cases per operation; 8 by default).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from eth_utils import to_checksum_address
from fastapi import FastAPI
from schemathesis.engine import events, from_schema

from node.auth.principal import Principal
from node.auth.service import issue_token_pair
from node.db import session_scope
from node.jobs.service import create_job
from node.models.auth import User
from node.models.workspaces import Role
from node.providers.schemas import RegisterProvider
from node.providers.service import register
from node.workspaces.api_keys import create_api_key
from tests.fixtures.db import PG_ADMIN_URL
from tests.fixtures.factories import make_user, make_workspace

pytestmark = [
    pytest.mark.skipif(
        bool(PG_ADMIN_URL), reason="runs once per suite, in the SQLite pass (minutes of fuzzing)"
    ),
    pytest.mark.slow,
]

MAX_EXAMPLES = int(os.environ.get("OPENAPI_MAX_EXAMPLES", "8"))
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)


@dataclass
class Run:
    """What one schemathesis run found: one line per distinct (operation, status,
    failure) and per error; and the operations it sent requests to."""

    found: list[str] = field(default_factory=list)
    tested: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Credentials:
    token: str
    api_key: str
    provider_token: str


@pytest.fixture
def credentials(app: FastAPI) -> Credentials:
    """A password user owning workspace 1, which holds job 1, a member API key of it, and
    a wallet registered as a provider (claims answer at once instead of long-polling)."""
    app.state.runtime.settings.leases.claim_wait_max_seconds = 0.0
    app.state.runtime.settings.events.stream_max_seconds = 0.0  # follow=true: no waiting
    owner = make_user(app, username="owner")
    wallet = make_user(app, address=to_checksum_address("0x" + "ab" * 20))
    workspace_id = make_workspace(app, owner)
    settings = app.state.runtime.settings
    with session_scope(app.state.runtime.sessionmaker) as session:
        principal = Principal(user_id=owner.id, subject="owner")
        create_job(
            session, job_type="data_processing", created_by=owner.id, workspace_id=workspace_id
        )
        _, key = create_api_key(session, principal, workspace_id, "fuzz", Role.MEMBER)
        provider = Principal(user_id=wallet.id, subject=wallet.address, address=wallet.address)
        register(session, provider, RegisterProvider(job_types=["data_processing"]))
        tokens = [
            issue_token_pair(session, settings, session.get(User, user_id))["access_token"]
            for user_id in (owner.id, wallet.id)
        ]
    return Credentials(token=tokens[0], api_key=key, provider_token=tokens[1])


def operations(app: FastAPI, keep: Callable[[dict[str, Any]], bool]) -> set[str]:
    """`METHOD /path` of the operations of `app`'s document that `keep` keeps."""
    return {
        f"{method.upper()} {path}"
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
        if keep(operation)
    }


def every(operation: dict[str, Any]) -> bool:
    return True


def secured(operation: dict[str, Any]) -> bool:
    return bool(operation.get("security"))


def of_providers(operation: dict[str, Any]) -> bool:
    return "providers" in operation.get("tags", ())


def run_schemathesis(app: FastAPI, headers: dict[str, str], only: set[str]) -> Run:
    """Run schemathesis with `headers` against the operations `only` of `app`'s
    /openapi.json."""
    config = schemathesis.Config.from_dict(
        {
            "seed": 20_260_901,
            "workers": 1,
            "continue-on-failure": True,
            "cache": {"enabled": False},  # no replay of earlier runs: every run is the same
            "headers": headers,
            "generation": {"deterministic": True, "max-examples": MAX_EXAMPLES},
            "phases": {
                "coverage": {"unexpected-methods": []},  # 405s tell nothing about a route
                "stateful": {"enabled": False},
            },
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    schema = schema.include(lambda ctx: ctx.operation.label in only)
    found: dict[str, None] = {}
    run = Run()
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                recorder = event.recorder
                if recorder.interactions:
                    run.tested.add(recorder.label)
                for case_id, checks in recorder.checks.items():
                    interaction = recorder.interactions.get(case_id)
                    response = interaction.response if interaction else None
                    status = response.status_code if response else "no response"
                    for check in checks:
                        if check.failure_info is not None:
                            failure = check.failure_info.failure
                            detail = failure.message.strip().splitlines()[-1:] or [""]
                            found.setdefault(
                                f"{recorder.label} -> {status}: {failure.title} ({detail[0]})"
                            )
            elif isinstance(event, events.NonFatalError | events.FatalError):
                found.setdefault(f"error: {event!r}"[:500])
    finally:
        # schemathesis started the app's lifespan (chain, reaper) for its calls: end it
        from schemathesis.python.asgi import shutdown_lifespans

        shutdown_lifespans()
    run.found = list(found)
    return run


def assert_conforms(app: FastAPI, headers: dict[str, str], only: set[str]) -> None:
    run = run_schemathesis(app, headers, only)
    assert run.tested == only, f"untested: {sorted(only - run.tested)}"
    assert not run.found, "\n".join(run.found)


def test_anonymous_calls_conform_to_the_openapi_document(app: FastAPI) -> None:
    assert_conforms(app, {}, operations(app, every))


def test_password_token_calls_conform_to_the_openapi_document(
    app: FastAPI, credentials: Credentials
) -> None:
    bearer = {"Authorization": f"Bearer {credentials.token}"}
    assert_conforms(app, bearer, operations(app, secured))


def test_api_key_calls_conform_to_the_openapi_document(
    app: FastAPI, credentials: Credentials
) -> None:
    bearer = {"Authorization": f"Bearer {credentials.api_key}"}
    assert_conforms(app, bearer, operations(app, secured))


def test_provider_wallet_calls_conform_to_the_openapi_document(
    app: FastAPI, credentials: Credentials
) -> None:
    bearer = {"Authorization": f"Bearer {credentials.provider_token}"}
    assert_conforms(app, bearer, operations(app, of_providers))
