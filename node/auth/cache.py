"""What verifying an access token needs from the database, kept for a few seconds.

An access token is verified by its signature, expiry and type (`node.auth.tokens`, on
every request, never cached) and by its user: the row must exist and be active, and its
wallet address is the principal's. That row lookup was one SQL statement and one worker
thread hop on every authenticated request. `UserCache` keeps the answer per user id for
`ttl_seconds` (settings: `auth_user_cache_seconds`; 0 turns it off) and at most
`max_entries` users (the least recently used goes first).

What may be stale, and for how long: a user deactivated or removed by hand in the
database is refused at most `ttl_seconds` later (the node itself never deactivates a
user). `forget(user_id)` drops one entry at once, for a change made through the node.
API keys are never cached: their revocation must be seen by every replica at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from marketplace.lru import Lru


@dataclass(frozen=True)
class CachedUser:
    user_id: int
    address: str | None


class UserCache:
    def __init__(
        self,
        ttl_seconds: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: Lru[int, tuple[float, CachedUser]] = Lru(max_entries)

    def get(self, user_id: int) -> CachedUser | None:
        """The active user `user_id` as looked up less than `ttl_seconds` ago, else None."""
        if self.ttl_seconds <= 0:
            return None
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        if self._clock() >= entry[0]:
            self._entries.discard(user_id, entry)
            return None
        return entry[1]

    def put(self, user: CachedUser) -> None:
        """Remember an active user (only active users are ever put)."""
        if self.ttl_seconds > 0:
            self._entries.put(user.user_id, (self._clock() + self.ttl_seconds, user))

    def forget(self, user_id: int) -> None:
        self._entries.discard(user_id)

    def __len__(self) -> int:
        return len(self._entries)
