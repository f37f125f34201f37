"""Helpers for the auth tests: real eth-account keys signing real EIP-4361 messages."""

from __future__ import annotations

import datetime as dt
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from marketplace.siwe import build_message


def new_account() -> LocalAccount:
    return Account.create()


def siwe_message(client: TestClient, account: LocalAccount, **overrides: Any) -> str:
    """A message for `account` built from a fresh `/auth/nonce` answer; `overrides`
    replace any field of `build_message`."""
    info = client.get("/auth/nonce").json()
    fields: dict[str, Any] = {
        "domain": info["domain"],
        "address": account.address,
        "uri": info["uri"],
        "chain_id": info["chain_id"],
        "nonce": info["nonce"],
        "statement": "Sign in to the dcm node",
        "issued_at": dt.datetime.now(dt.UTC),
    }
    fields.update(overrides)
    return build_message(**fields)


def sign(account: LocalAccount, message: str) -> str:
    return "0x" + account.sign_message(encode_defunct(text=message)).signature.hex().removeprefix(
        "0x"
    )


def siwe_login(client: TestClient, account: LocalAccount, **overrides: Any) -> Any:
    message = siwe_message(client, account, **overrides)
    return client.post("/auth/siwe", json={"message": message, "signature": sign(account, message)})
