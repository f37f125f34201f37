"""Wake-ups across node replicas: the in-process notifier (`node.notifier`) bridged to
PostgreSQL `LISTEN/NOTIFY`.

Every topic this replica notifies after a commit is also sent as `NOTIFY dcm_wake` with a
small JSON payload; every replica LISTENs on the channel and notifies the topics it
receives from others locally (claim long-polls, event followers, the webhook sender, the
chain tick). PostgreSQL delivers a NOTIFY only after the sending transaction commits and
to every listening session, in order.

Two threads, each with a dedicated autocommit connection: one sends what the notifier
queued (coalescing a burst into few NOTIFYs), one waits for what others sent.

The sender sends only while another replica listens: the listeners' connections are named
(`LISTENER_APP`) and counted in `pg_stat_activity` at most once a `PEER_CHECK_SECONDS`,
and again as soon as a listener's hello arrives (it says hello on the channel as it
connects; a wake-up sent before that reaches nobody, and the new replica's long-polls
fall back to their re-check, as after a reconnect). A lone node (the usual deployment)
sent every wake to itself and threw it away on arrival: 6 % of the node's GIL time under
32 claiming providers (py-spy on bench/dispatch.py).

If the listening connection breaks, the bridge reconnects and wakes every local waiter
once (they re-read the database), so a notification lost while disconnected costs at
most a spurious wake, never a missed job; the long-polls' short
fallback re-check (`leases.claim_poll_seconds`) covers the seconds in between.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import select
import threading
import time
import uuid
from collections.abc import Hashable
from typing import Any

from node.notifier import Notifier

log = logging.getLogger("dcm.pgnotify")

CHANNEL = "dcm_wake"
MAX_PAYLOAD = 7000  # PostgreSQL's limit is 8000 bytes
LISTENER_APP = "dcm-wake-listen"  # the listeners' application_name, as peers count them
PEER_CHECK_SECONDS = 1.0
# Other replicas' listeners on this database (ours is left out by its backend pid)
_PEERS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    " AND application_name = %s AND pid <> %s"
)


def encode_topic(topic: Hashable) -> Any:
    if isinstance(topic, tuple):
        return list(topic)
    return topic


def decode_topic(item: Any) -> Hashable:
    if isinstance(item, list):
        return tuple(item)
    return item


def payloads(origin: str, topics: list[Any]) -> list[str]:
    """The topics as NOTIFY payloads under PostgreSQL's size limit."""
    out: list[str] = []
    batch: list[Any] = []
    size = 0
    for topic in topics:
        item = json.dumps(topic, separators=(",", ":"))
        if batch and size + len(item) + 1 > MAX_PAYLOAD - 64:
            out.append(json.dumps({"o": origin, "t": batch}, separators=(",", ":")))
            batch, size = [], 0
        batch.append(topic)
        size += len(item) + 1
    if batch:
        out.append(json.dumps({"o": origin, "t": batch}, separators=(",", ":")))
    return out


class PgWakeBridge:
    def __init__(self, sqlalchemy_url: str, notifier: Notifier) -> None:
        self.url = sqlalchemy_url
        self.notifier = notifier
        self.origin = uuid.uuid4().hex[:12]
        self._out: queue.SimpleQueue[tuple[Hashable, ...] | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._threads: list[threading.Thread] = []
        self.connected = threading.Event()
        self.sent = 0
        self.received = 0
        self._listener_pid = 0  # our listener's backend, which the peer count leaves out
        self._peers = 0
        self._peers_checked_until = 0.0
        self._recount = threading.Event()  # set when a peer's hello arrives

    # called by the notifier, on any thread, for topics notified in this process
    def relay(self, topics: tuple[Hashable, ...]) -> None:
        if not self._stop.is_set():
            self._out.put(topics)

    def start(self) -> None:
        self.notifier.relay = self.relay
        self._threads = [
            threading.Thread(target=self._run_listener, name="pg-wake-listen", daemon=True),
            threading.Thread(target=self._run_sender, name="pg-wake-send", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self.notifier.relay = None
        self._stop.set()
        self._out.put(None)
        os.write(self._wake_w, b"x")
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []
        os.close(self._wake_r)
        os.close(self._wake_w)

    # ------------------------------------------------------------------ the threads

    def _run_listener(self) -> None:
        from node.replicas import pg_connect

        first = True
        while not self._stop.is_set():
            conn = None
            try:
                conn = pg_connect(self.url, LISTENER_APP)
                conn.execute(f"LISTEN {CHANNEL}")
                self._listener_pid = conn.info.backend_pid
                # hello: the others' senders count listeners again, and now send to us
                hello = json.dumps({"o": self.origin, "t": []}, separators=(",", ":"))
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, hello))
                self._recount.set()
                self.connected.set()
                if not first:  # what was sent while we were away: everyone re-reads
                    self.notifier.wake_all()
                first = False
                while not self._stop.is_set():
                    # the socket, or `stop` through the wake pipe: a stop waits for nothing
                    select.select([conn.fileno(), self._wake_r], [], [], 30.0)
                    for note in conn.notifies(timeout=0):
                        self._deliver(note.payload)
            except Exception as exc:
                self.connected.clear()
                if self._stop.is_set():
                    break
                log.warning("wake bridge: listener lost (%s); reconnecting", str(exc)[:200])
                self._stop.wait(1.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()

    def _run_sender(self) -> None:
        from node.replicas import pg_connect

        conn = None
        while not self._stop.is_set():
            first = self._out.get()
            if first is None:
                break
            batch = [first]
            while True:  # coalesce what queued meanwhile into few NOTIFYs
                try:
                    item = self._out.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._stop.set()
                    break
                batch.append(item)
            topics: list[Any] = []
            seen: set[str] = set()
            for item in batch:
                for topic in item:
                    enc = encode_topic(topic)
                    key = json.dumps(enc)
                    if key not in seen:
                        seen.add(key)
                        topics.append(enc)
            for attempt in range(2):
                try:
                    if conn is None:
                        conn = pg_connect(self.url)
                    if not self._others_listen(conn):
                        break  # nobody else to wake: our own waiters were woken in-process
                    for payload in payloads(self.origin, topics):
                        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                        self.sent += 1
                    break
                except Exception as exc:
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            conn.close()
                    conn = None
                    if attempt:  # the others' long-polls fall back to their re-check
                        log.warning("wake bridge: NOTIFY failed: %s", str(exc)[:200])
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _others_listen(self, conn: Any) -> bool:
        """Whether another replica's listener is connected (counted again after a
        hello, else at most once a `PEER_CHECK_SECONDS`)."""
        now = time.monotonic()
        if self._recount.is_set() or now >= self._peers_checked_until:
            self._recount.clear()
            row = conn.execute(_PEERS, (LISTENER_APP, self._listener_pid)).fetchone()
            self._peers = int(row[0]) if row else 0
            self._peers_checked_until = now + PEER_CHECK_SECONDS
        return self._peers > 0

    def _deliver(self, payload: str) -> None:
        try:
            msg = json.loads(payload)
        except ValueError:
            return
        if msg.get("o") == self.origin:
            return  # our own, already delivered in-process
        if not msg.get("t") or self._peers == 0:  # a hello, or a peer we had not counted
            self._recount.set()
        topics = tuple(decode_topic(t) for t in msg.get("t", ()))
        if topics:
            self.received += 1
            self.notifier.notify_local(*topics)
