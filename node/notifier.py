"""The node's one in-process wake-up: topics with a generation counter on the event loop.

Writers commit in sync code (a request's threadpool thread, a loop service's thread);
session hooks call `notify(topic...)` after the commit, so that the rows are visible to
whoever wakes. A waiter reads a topic's generation, reads the database, then `wait`s for
the generation to move: a commit between its read and its wait wakes it at once, so
nothing is missed and nobody polls the database in a loop (a short fallback timeout
covers writes of other node replicas sharing the database).

Topics: `CLAIMABLE` (a job became claimable: long-poll claims), `("job", id)` (a job's
event log grew: event streams), `EVENTS` (any job event committed: the webhook sender,
through `listen`). Job topics exist only while someone watches them (`watching`).
On shutdown `close()` ends every wait at once.

With several node replicas on PostgreSQL, `node.pgnotify` installs a `relay` that sends
every topic notified here to the other replicas (`LISTEN/NOTIFY`), which deliver it with
`notify_local`: a job opened through one replica wakes the claims long-polling another.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field

CLAIMABLE = "claimable"
EVENTS = "events"


def job_topic(job_id: int) -> tuple[str, int]:
    return ("job", job_id)


@dataclass
class _Topic:
    generation: int = 0
    watchers: int = 0
    changed: asyncio.Event | None = None


@dataclass(eq=False)
class Notifier:
    closed: bool = False  # the node is shutting down: waits return now
    _loop: asyncio.AbstractEventLoop | None = None
    _topics: dict[Hashable, _Topic] = field(default_factory=dict)
    _listeners: dict[Hashable, list[Callable[[], None]]] = field(default_factory=dict)
    _ended_at: dict[str, float] = field(default_factory=dict)  # provider key -> when ended
    # Set by the PostgreSQL bridge (`node.pgnotify`): topics notified here are also sent
    # to the other replicas (thread-safe, cheap: it only queues).
    relay: Callable[[tuple[Hashable, ...]], None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for topic in self._topics.values():
            topic.changed = asyncio.Event()

    # ------------------------------------------------------------------ writers' side

    def notify(self, *topics: Hashable) -> None:
        """Thread-safe: may be called from any thread. No topic: `CLAIMABLE`. Reaches
        the other replicas too when a bridge is installed (`relay`)."""
        topics = topics or (CLAIMABLE,)
        relay = self.relay
        if relay is not None:
            relay(topics)
        self.notify_local(*topics)

    def notify_local(self, *topics: Hashable) -> None:
        """`notify` in this process only (what the bridge delivers from other replicas)."""
        for topic in topics:
            for callback in self._listeners.get(topic, ()):
                callback()
        loop = self._loop
        if loop is None or loop.is_closed():
            for topic in topics:
                self._bump(topic)
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            for topic in topics:
                self._bump(topic)
        else:
            loop.call_soon_threadsafe(self._bump_all, topics)

    def listen(self, topic: Hashable, callback: Callable[[], None]) -> None:
        """Call `callback` (thread-safe itself, cheap) whenever `topic` is notified."""
        self._listeners.setdefault(topic, []).append(callback)

    def end_polls(self, key: str) -> None:
        """End the open long-polls of one provider (on the event loop): each answers "no
        work" at its next check, and is handed no lease. (Kept for main's draining
        providers, `POST /v1/providers/claim/end`.)"""
        relay = self.relay
        if relay is not None:
            relay((("end", key),))  # the provider's polls on other replicas end too
        self._end_local(key)

    def _end_local(self, key: str) -> None:
        now = time.monotonic()
        self._ended_at = {k: t for k, t in self._ended_at.items() if now - t < 3600}
        self._ended_at[key] = now
        self._bump(CLAIMABLE)

    def poll_ended(self, key: str, started: float) -> bool:
        """Whether a poll of `key` that started at `started` (monotonic) was ended."""
        return self._ended_at.get(key, float("-inf")) >= started

    def close(self) -> None:
        """Thread-safe (a signal handler may call it): end every wait at once."""
        self.closed = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._bump_all, tuple(self._topics))

    def wake_all(self) -> None:
        """Thread-safe: wake every waiter once (they re-read the database)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._bump_all, (CLAIMABLE, *self._topics))
        for topic in list(self._listeners):
            for callback in self._listeners.get(topic, ()):
                callback()

    def _bump_all(self, topics: tuple[Hashable, ...]) -> None:
        for topic in topics:
            self._bump(topic)

    def _bump(self, key: Hashable) -> None:
        if isinstance(key, tuple) and key[0] == "end":  # another replica's `end_polls`
            self._end_local(key[1])
            return
        topic = self._topics.get(key)
        if topic is None:
            if key != CLAIMABLE:
                return  # nobody watches it
            topic = self._topics[key] = _Topic()
        topic.generation += 1
        if topic.changed is not None:
            topic.changed.set()
            topic.changed = asyncio.Event()

    # ------------------------------------------------------------------ waiters' side

    @contextlib.contextmanager
    def watching(self, key: Hashable) -> Iterator[None]:
        """Keep `key`'s generation counted while the block runs (on the event loop)."""
        topic = self._topics.setdefault(key, _Topic())
        topic.watchers += 1
        try:
            yield
        finally:
            topic.watchers -= 1
            if topic.watchers <= 0 and key != CLAIMABLE:
                self._topics.pop(key, None)

    def generation_of(self, key: Hashable) -> int:
        topic = self._topics.get(key)
        return topic.generation if topic is not None else 0

    @property
    def generation(self) -> int:
        return self.generation_of(CLAIMABLE)

    async def wait(self, seen_generation: int, timeout: float, topic: Hashable = CLAIMABLE) -> None:
        """Return when `topic`'s generation moves past `seen_generation`, on close, or after
        `timeout`."""
        entry = self._topics.setdefault(topic, _Topic())
        if self.closed or entry.generation != seen_generation or self._loop is None:
            return
        if entry.changed is None:
            entry.changed = asyncio.Event()
        changed = entry.changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)
