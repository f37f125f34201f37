"""A test client that writes content as a signed-in user (Kubo RPC writes need
credentials), and a node served over real loopback HTTP (uvicorn in a thread), for
clients that need a URL: the `dcm ipfs` CLI and ipfshttpclient."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.fixtures import web
from tests.fixtures.factories import make_user, signed_in
from tests.fixtures.live import served_in_thread


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """The suite's client, sending a user token with every request (reads need none)."""
    with TestClient(app) as c:
        c.headers.update(signed_in(app, c))
        yield c


@pytest.fixture
def live_node(app: FastAPI) -> Iterator[str]:
    with served_in_thread(app) as url:
        yield url


@pytest.fixture
def writer_token(app: FastAPI, live_node: str) -> str:
    """An access token of a new user of `live_node` (for clients outside TestClient)."""
    user = make_user(app, password="s3cret-pass")
    body = {"username": user.username, "password": "s3cret-pass"}
    resp = web.post(f"{live_node}/auth/login", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]
