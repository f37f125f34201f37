"""A client that is told a write succeeded can read it at once: the request's transaction
commits before the response leaves the node (not after, as FastAPI's default teardown of
yield dependencies would do)."""

from __future__ import annotations

import httpx
from eth_account import Account

from marketplace.sdk.http import siwe_payload
from tests.fixtures.served import Served


def test_sign_in_then_use_the_token_at_once(tmp_path, database_url):
    node = Served(tmp_path / "node", database_url)
    try:
        with httpx.Client(base_url=node.url, timeout=10) as http:
            for _ in range(25):
                account = Account.create()
                nonce = http.get("/auth/nonce").json()
                signed = http.post("/auth/siwe", json=siwe_payload(nonce, account, "t"))
                assert signed.status_code == 200, signed.text
                token = signed.json()["access_token"]
                me = http.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
                assert me.status_code == 200, me.text
                created = http.post("/v1/jobs", json={"type": "t", "payload": {}},
                                    headers={"Authorization": f"Bearer {token}"})
                job_id = created.json()["data"]["id"]
                got = http.get(f"/v1/jobs/{job_id}",
                               headers={"Authorization": f"Bearer {token}"})
                assert got.status_code == 200, got.text
    finally:
        node.stop()
