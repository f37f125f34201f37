"""Several node replicas on one database: who runs the singleton work, and who may start.

**Singletons.** The loop services (chain tick: outbox sender, chain watcher, settlement
policy; lease reaper; webhook sender; log janitor; block collector) run in exactly one
replica at a time. On PostgreSQL the replica that holds a session-level advisory lock
(`pg_try_advisory_lock(LEADER_KEY)`) on a connection of its own is the leader
(`LeaderElection`); the others try again every `retry_seconds`. The leader checks its lock
connection as often: when the connection dies (the database restarted, the network
broke) it stops the singletons at once, since PostgreSQL released the lock with the
session and another replica may already hold it. A leader killed outright loses its
session, hence its lock, as its socket closes: a follower takes over within about
`retry_seconds`.

**Single-node engines.** The embedded SQLite file and the embedded chain (its journal
under the data dir) are for one process. `claim_data_dir` takes an exclusive `flock` on
`<data_dir>/node.lock` for the process's life and refuses to start a second node on the
same data dir; on PostgreSQL with the embedded chain, the first replica to start holds
the advisory lock `EMBEDDED_CHAIN_KEY` for its life and any other replica refuses to
start (two embedded chains against one database would be two ledgers).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import zlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

log = logging.getLogger("dcm.replicas")

# Advisory lock keys (one 64-bit key space per database; chosen to not collide with
# anything else a shared database might use: "dcm" in ASCII, then a small number).
LEADER_KEY = 0x64636D_0001
EMBEDDED_CHAIN_KEY = 0x64636D_0002
MIGRATION_KEY = 0x64636D_0003
PASS_KEY_BASE = 0x64636D_0100_0000_00  # + crc32 of a loop service's name

LOCK_NAME = "node.lock"


class ReplicaConflict(RuntimeError):
    """Another node already runs on data that only one node may use."""


def is_postgres(sqlalchemy_url: str) -> bool:
    return sqlalchemy_url.startswith("postgresql")


def libpq_url(sqlalchemy_url: str) -> str:
    """A URL psycopg accepts (no `+psycopg` driver suffix)."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


# A dedicated autocommit connection with TCP keepalives short enough that a broken
# network is noticed within seconds (`pg_connect`, and psycopg's `AsyncConnection.connect`).
PG_CONNECT_OPTIONS = {
    "autocommit": True,
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
    "tcp_user_timeout": 8000,
}


def pg_connect(sqlalchemy_url: str, application_name: str = "dcm-node") -> Any:
    """A dedicated connection (`PG_CONNECT_OPTIONS`)."""
    import psycopg

    return psycopg.connect(
        libpq_url(sqlalchemy_url), application_name=application_name, **PG_CONNECT_OPTIONS
    )


# --------------------------------------------------------------------------- single node


class DataDirClaim:
    """This process's exclusive lock on a data dir; `close()` releases it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def claim_data_dir(data_dir: Path, why: str) -> DataDirClaim:
    """Take `<data_dir>/node.lock` exclusively, or raise `ReplicaConflict`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ReplicaConflict(
            f"another node is running on the data dir {data_dir} ({why}): only one node may "
            "use it. Several replicas need PostgreSQL (DCM_DATABASE_URL) and an external "
            "chain (DCM_CHAIN_RPC_URL)."
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return DataDirClaim(fd)


class PgSessionLock:
    """A session-level advisory lock held on a connection of its own for the process's
    life (the embedded chain on PostgreSQL)."""

    def __init__(self, sqlalchemy_url: str, key: int, why: str) -> None:
        self.conn = pg_connect(sqlalchemy_url)
        got = self.conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
        if not got:
            self.conn.close()
            raise ReplicaConflict(
                f"another node replica already runs on this database ({why}). Several "
                "replicas need an external chain (DCM_CHAIN_RPC_URL)."
            )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


# --------------------------------------------------------------------------- passes


def pass_fence(engine: Engine) -> Callable[[str], contextlib.AbstractContextManager[bool]]:
    """A guard for loop service passes (`LoopService.guard`): each pass holds a
    transaction-scoped advisory lock of its service on a pooled connection, so that two
    replicas never run a pass of the same service at once, even in the second or two a
    leader whose lock connection broke has not noticed yet (its pass in flight holds the
    pass lock; the new leader's pass is skipped until that one ends or its session dies).
    """

    @contextlib.contextmanager
    def fence(name: str) -> Iterator[bool]:
        key = PASS_KEY_BASE + zlib.crc32(name.encode())
        with engine.connect() as conn, conn.begin():
            ours = bool(
                conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar()
            )
            yield ours

    return fence


# --------------------------------------------------------------------------- leader


class LeaderElection:
    """Hold `key` on a dedicated connection; call `on_elected` when this replica becomes
    the leader and `on_deposed` when it stops being one (lock connection lost, or stop).

    `leader` is read by metrics and tests; `elections` counts how often this replica
    took over."""

    def __init__(
        self,
        sqlalchemy_url: str,
        on_elected: Callable[[], Awaitable[None]],
        on_deposed: Callable[[], Awaitable[None]],
        *,
        key: int = LEADER_KEY,
        retry_seconds: float = 1.0,
    ) -> None:
        self.url = sqlalchemy_url
        self.key = key
        self.retry_seconds = retry_seconds
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.leader = False
        self.elections = 0
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None

    def _try_lock(self) -> bool:
        if self._conn is None:
            self._conn = pg_connect(self.url)
        return bool(
            self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()[0]
        )

    def _still_held(self) -> bool:
        """Whether the lock's session is alive and still holds the lock."""
        row = self._conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = pg_backend_pid() AND objid = %s AND classid = %s",
            (self.key & 0xFFFFFFFF, (self.key >> 32) & 0xFFFFFFFF),
        ).fetchone()
        return bool(row[0])

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    async def _step(self) -> None:
        try:
            if self.leader:
                held = await asyncio.to_thread(self._still_held)
            else:
                held = await asyncio.to_thread(self._try_lock)
        except Exception as exc:
            held = False
            await asyncio.to_thread(self._drop_connection)
            log.warning("leader election: lock connection failed: %s", str(exc)[:200])
        if held and not self.leader:
            self.leader = True
            self.elections += 1
            log.info("leader election: this replica is the leader (singleton services start)")
            await self.on_elected()
        elif not held and self.leader:
            self.leader = False
            log.warning("leader election: leadership lost (singleton services stop)")
            await self.on_deposed()

    async def _loop(self) -> None:
        while True:
            await self._step()
            await asyncio.sleep(self.retry_seconds)

    async def start(self) -> None:
        await self._step()  # the first replica up leads from its first moment
        self._task = asyncio.create_task(self._loop(), name="leader-election")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.leader:
            self.leader = False
            await self.on_deposed()
        await asyncio.to_thread(self._drop_connection)  # releases the lock
