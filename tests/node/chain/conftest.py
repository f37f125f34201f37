"""Fixtures for the embedded chain: a started node (TestClient with lifespan) and a
web3 client whose provider posts JSON-RPC through that node's `/chain/rpc`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from eth_account import Account
from fastapi.testclient import TestClient
from web3 import Web3
from web3.providers.base import BaseProvider

from node.config import NodeSettings
from node.escrow.tick import ChainTick
from tests.fixtures.app import create_app


class RpcViaTestClient(BaseProvider):
    """web3 provider posting each request to `/chain/rpc` of an in-process node."""

    def __init__(self, client: TestClient) -> None:
        super().__init__()
        self.client = client
        self._id = 0

    def make_request(self, method: Any, params: Any) -> Any:
        self._id += 1
        payload = {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}
        resp = self.client.post(
            "/chain/rpc",
            content=Web3.to_json(payload),
            headers={"content-type": "application/json"},
        )
        assert resp.status_code == 200, resp.text
        return resp.json()

    def is_connected(self, show_traceback: bool = False) -> bool:
        return True


# The node's own loopback: development-only JSON-RPC methods (evm_increaseTime) answer
# loopback clients only, and TestClient's default client host is not an address.
LOOPBACK_CLIENT = ("127.0.0.1", 50000)


@contextlib.contextmanager
def hand_driven_node(settings: NodeSettings) -> Iterator[TestClient]:
    """A started node whose chain tick passes run only when the test runs one: none on an
    interval, none on a commit, and none at start. On PostgreSQL the first pass waits for
    the leader election, so it could land in the middle of a test that had set the chain's
    state up by hand (a CI failure of test_a_deposit_after_the_funding_timeout_is_refunded:
    that pass expired the job before the test's own did)."""
    settings.chain_watch_interval_seconds = 3600
    with (
        mock.patch.object(ChainTick, "run_at_start", False),
        TestClient(create_app(settings), client=LOOPBACK_CLIENT) as client,
    ):
        client.app.state.runtime.chain_tick.wake_on_commit = False
        yield client


@pytest.fixture
def node(settings: NodeSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), client=LOOPBACK_CLIENT) as client:
        yield client


@pytest.fixture
def w3(node: TestClient) -> Web3:
    return Web3(RpcViaTestClient(node))


def fund(client: TestClient, address: str, amount: str = "10") -> dict[str, Any]:
    resp = client.post("/chain/faucet", json={"address": address, "amount": amount})
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture
def funded_account(node: TestClient) -> Any:
    acct = Account.create()
    fund(node, acct.address)
    return acct
