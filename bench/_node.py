"""A real `dcm serve` for the benchmarks: its own data dir and port, the schema upgraded
first (`dcm db upgrade`), ready when `/readyz` answers 200; its output in `node.log`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.ports import free_port  # noqa: E402


class Node:
    def __init__(self, data_dir: Path, database_url: str | None = None, **env_vars: str) -> None:
        """`env_vars`: settings of this node (`DCM_...`), on top of a clean environment."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DCM_")}
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        env.update(PYTHONPATH=path, DCM_DATA_DIR=str(data_dir), DCM_PUBLIC_URL=self.url)
        if database_url:
            env["DCM_DATABASE_URL"] = database_url
        env.update(env_vars)
        data_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "dcm.cli", "db", "upgrade"], env=env, check=True)
        self._log = (data_dir / "node.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dcm.cli", "serve", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(600):
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"node did not start; see {data_dir / 'node.log'}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@contextlib.contextmanager
def served_node(data_dir: Path, database_url: str | None = None) -> Iterator[str]:
    """Run a node for the block; yield its URL."""
    node = Node(data_dir, database_url)
    try:
        yield node.url
    finally:
        node.stop()


@contextlib.contextmanager
def scratch_database(server_url: str | None) -> Iterator[str | None]:
    """A new database on the PostgreSQL server at `server_url` for the block (its URL),
    dropped after it: a benchmark's 100,000 jobs must not stay on the server. None for
    None (the node's embedded SQLite)."""
    if server_url is None:
        yield None
        return
    import psycopg

    name = f"dcm_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
