"""Password hashing with Argon2id (memory-hard), via argon2-cffi, and the gate that
bounds how many hashes run at once (`HashingGate`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from marketplace.errors import RateLimited

_hasher = PasswordHasher()
# Verified against when the user does not exist, so that timing does not reveal usernames;
# one per set of hashing parameters, made on first use. Made at import, it cost every
# process that imports the node (each `dcm serve`, each test worker) a production-cost
# hash, about half a second of CPU.
_dummy_hashes: dict[tuple[int, int, int], str] = {}


def _dummy_hash() -> str:
    key = (_hasher.time_cost, _hasher.memory_cost, _hasher.parallelism)
    found = _dummy_hashes.get(key)
    if found is None:
        found = _dummy_hashes[key] = _hasher.hash("not-a-real-password")
    return found


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        matched = _hasher.verify(password_hash or _dummy_hash(), password)
        return matched and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


class HashingGate:
    """At most `slots` password hashes at once in this process.

    Argon2id at the production cost takes 64 MiB and four threads for tens of
    milliseconds per hash. Unbounded, a burst of bad logins (each one a hash, by design)
    multiplies that by the number of worker threads: memory in the gigabytes and every
    other request queued behind them. A login waits for a slot in the event loop, holding
    neither a worker thread nor a database connection, at most `wait_seconds`; then it is
    refused like any other excess of sign-ins: 429 `RATE_LIMIT_EXCEEDED` with
    `Retry-After` (details name the `password_hashing` limit). A client told to slow
    down backs off; a 5xx would say the node is broken, which it is not.
    """

    def __init__(self, slots: int, wait_seconds: float) -> None:
        self.slots = slots
        self.wait_seconds = wait_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore: asyncio.Semaphore | None = None

    def _bound_semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:  # a new app loop (tests)
            self._loop, self._semaphore = loop, asyncio.Semaphore(self.slots)
        return self._semaphore

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        semaphore = self._bound_semaphore()
        try:
            async with asyncio.timeout(self.wait_seconds):
                await semaphore.acquire()
        except TimeoutError:
            raise RateLimited(
                "Too many sign-ins at once; retry shortly",
                retry_after_seconds=1,
                details={"limit": "password_hashing"},
            ) from None
        try:
            yield
        finally:
            semaphore.release()
