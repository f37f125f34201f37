"""Password hashing is bounded: a burst of logins waits for a few hashing slots in the
event loop and is refused 429 past its wait, while other requests go on."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from argon2 import PasswordHasher, profiles
from fastapi.testclient import TestClient

from marketplace.errors import RateLimited
from node.auth import passwords
from node.auth.passwords import HashingGate
from node.config import NodeSettings
from tests.fixtures.app import create_app


class SlowHasher(PasswordHasher):
    """The cheap test hasher, slowed to one second per verification and counting how
    many run at once."""

    def __init__(self) -> None:
        cheap = profiles.CHEAPEST
        super().__init__(
            time_cost=cheap.time_cost,
            memory_cost=cheap.memory_cost,
            parallelism=cheap.parallelism,
            hash_len=cheap.hash_len,
            salt_len=cheap.salt_len,
        )
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002
        with self._lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(1.0)
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.running -= 1


def test_a_login_burst_hashes_one_at_a_time_and_the_rest_get_429(
    settings: NodeSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    hasher = SlowHasher()
    monkeypatch.setattr(passwords, "_hasher", hasher)
    settings.rate_limits.password_hash_slots = 1
    settings.rate_limits.password_hash_wait_seconds = 0.2
    with TestClient(create_app(settings)) as node:
        body = {"username": "nobody", "password": "wrong-password"}
        with ThreadPoolExecutor(4) as pool:
            logins = [pool.submit(node.post, "/auth/login", json=body) for _ in range(4)]
            time.sleep(0.4)  # the burst is waiting or refused by now; the node still answers
            assert node.get("/healthz").status_code == 200
            answers = [f.result() for f in logins]
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [401, 429, 429, 429]
    busy = next(r for r in answers if r.status_code == 429)
    assert busy.json()["code"] == "RATE_LIMIT_EXCEEDED"
    assert busy.json()["detail"] == {"limit": "password_hashing"}
    assert busy.headers["retry-after"] == "1"
    assert hasher.most_at_once == 1


def test_a_slot_frees_for_the_next_caller() -> None:
    async def scenario() -> None:
        gate = HashingGate(slots=1, wait_seconds=0.05)
        async with gate.slot():
            with pytest.raises(RateLimited):
                async with gate.slot():
                    pass
        async with gate.slot():  # released: taken at once
            pass

    asyncio.run(scenario())
