"""`node.readcache`: an answer is served again only while nothing was committed to the
SQLite database since the version read before its statements ran; on PostgreSQL the
cache is off."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from node.db import make_engine
from node.readcache import ReadCache


def _database(tmp_path: Path) -> tuple[str, object]:
    url = f"sqlite:///{tmp_path / 'node.sqlite3'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    return url, engine


def test_an_answer_is_served_until_any_connection_commits(tmp_path: Path) -> None:
    url, engine = _database(tmp_path)
    cache = ReadCache(url)
    assert cache.enabled
    version = cache.version()
    cache.put("k", version, b"answer")
    assert cache.get("k") == b"answer"
    assert cache.get("k") == b"answer"  # reading the version is no change
    with engine.begin() as conn:  # the node's own pool
        conn.execute(text("INSERT INTO t VALUES (1)"))
    assert cache.get("k") is None and len(cache) == 0
    # another process (a `dcm` command on the same file)
    cache.put("k", cache.version(), b"again")
    db = url.removeprefix("sqlite:///")
    script = (
        f"import sqlite3; c = sqlite3.connect({db!r}); c.execute('UPDATE t SET n = 2'); c.commit()"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    assert cache.get("k") is None
    # a transaction that wrote nothing, and one rolled back, change nothing
    cache.put("k", cache.version(), b"kept")
    with engine.begin() as conn:
        conn.execute(text("SELECT n FROM t")).all()
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO t VALUES (3)"))
        conn.rollback()
    assert cache.get("k") == b"kept"
    cache.close()
    engine.dispose()


def test_a_commit_after_the_version_was_read_makes_the_answer_stale(tmp_path: Path) -> None:
    """The version is read before the statements: a commit landing between the two could
    be missing from the answer, so the answer must not outlive it."""
    url, engine = _database(tmp_path)
    cache = ReadCache(url)
    version = cache.version()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    cache.put("k", version, b"maybe without the insert")
    assert cache.get("k") is None
    cache.close()
    engine.dispose()


def test_the_newest_used_answers_are_kept(tmp_path: Path) -> None:
    url, engine = _database(tmp_path)
    cache = ReadCache(url, max_entries=2)
    version = cache.version()
    cache.put("a", version, b"a")
    cache.put("b", version, b"b")
    assert cache.get("a") == b"a"  # used: "b" is now the oldest
    cache.put("c", version, b"c")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"a", None, b"c")
    cache.close()
    engine.dispose()


def test_off_where_no_commit_counter_is_cheaper_than_the_read() -> None:
    for url in ("postgresql://postgres@127.0.0.1/postgres", "sqlite:///:memory:"):
        cache = ReadCache(url)
        assert not cache.enabled and cache.version() is None
        cache.put("k", cache.version(), b"x")
        assert cache.get("k") is None
