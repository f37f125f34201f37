"""`node.readcache`: an answer is served again only while nothing was committed to the
database since the version read before its statements ran (SQLite's data version,
PostgreSQL's snapshot), whoever committed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from node.config import NodeSettings
from node.db import make_engine
from node.readcache import CachedReads, ReadCache, answer_version, keep_answer

# PostgreSQL's snapshot moves with every write on the server, other tests' included: an
# answer is served again once no write landed between its put and its get.
TRIES = 200


@pytest.fixture
def db(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = NodeSettings(data_dir=tmp_path, database_url=database_url).sqlalchemy_url
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    yield url, engine
    engine.dispose()


def served_again(cache: ReadCache, answer: bytes) -> bool:
    async def attempt() -> bool:
        for _ in range(TRIES):
            cache.put("k", await cache.version(), answer)
            if await cache.get("k") == answer:
                return True
        return False

    return asyncio.run(attempt())


def commit(engine: Engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement))


def test_an_answer_is_served_until_any_connection_commits(db: tuple[str, Engine]) -> None:
    url, engine = db
    cache = ReadCache(url)
    assert cache.enabled
    assert served_again(cache, b"answer")
    commit(engine, "INSERT INTO t VALUES (1)")  # the node's own pool
    assert asyncio.run(cache.get("k")) is None and len(cache) == 0

    # another process (a `dcm` command, another replica)
    assert served_again(cache, b"again")
    script = (
        "import sqlalchemy as sa, sys; e = sa.create_engine(sys.argv[1])\n"
        "with e.begin() as c: c.execute(sa.text('UPDATE t SET n = 2'))"
    )
    subprocess.run([sys.executable, "-c", script, url], check=True)
    assert asyncio.run(cache.get("k")) is None
    asyncio.run(cache.close())


def test_a_commit_after_the_version_was_read_makes_the_answer_stale(
    db: tuple[str, Engine],
) -> None:
    """The version is read before the statements: a commit landing between the two could
    be missing from the answer, so the answer must not outlive it."""
    url, engine = db
    cache = ReadCache(url)

    async def put_around_a_commit() -> bytes | None:
        version = await cache.version()
        commit(engine, "INSERT INTO t VALUES (1)")
        cache.put("k", version, b"maybe without the insert")
        return await cache.get("k")

    assert asyncio.run(put_around_a_commit()) is None
    asyncio.run(cache.close())


def test_requests_for_a_resource_being_answered_wait_for_its_answer(
    db: tuple[str, Engine],
) -> None:
    """While a route answers a key, a request for it waits and takes that answer when no
    commit came between the two version reads; one that arrived after a commit does not
    (its answer must show the commit), and the route answers it."""
    url, engine = db
    cache = ReadCache(url)

    async def attempt(commit_between: bool) -> list[bytes | None]:
        flight = cache.lead("k")
        assert flight is not None and cache.lead("k") is None  # one leader a key
        version = await cache.version()  # the leader's, before its statements
        if commit_between:
            commit(engine, "INSERT INTO t VALUES (1)")
        waiting = [asyncio.create_task(cache.get("k")) for _ in range(5)]
        await asyncio.sleep(0.05)  # they read the version and wait
        assert not any(w.done() for w in waiting)
        cache.put("k", version, b"the leader's")
        cache.land("k", flight)
        answers = await asyncio.gather(*waiting)
        await cache.close()
        return answers

    for _ in range(TRIES):  # PostgreSQL: until no other test wrote in between
        if asyncio.run(attempt(False)) == [b"the leader's"] * 5:
            break
    else:
        pytest.fail("the waiting requests never took the leader's answer")
    assert asyncio.run(attempt(True)) == [None] * 5


def test_concurrent_requests_for_one_resource_are_answered_by_the_route_once(
    tmp_path: Path,
) -> None:
    """`CachedReads`: ten requests of one caller for one resource at once (the pollers of
    a job right after it changed) run the route once; each gets the whole answer."""
    url = f"sqlite:///{tmp_path / 'node.sqlite3'}"
    commit(make_engine(url), "CREATE TABLE t (n INTEGER)")
    cache = ReadCache(url)
    calls = 0

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal calls
        calls += 1
        request = Request(scope, receive)
        version = await answer_version(request)
        await asyncio.sleep(0.05)  # its statements
        keep_answer(request, version)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"job"})

    layer = CachedReads(route, cache, principal_of=lambda request: "caller")

    async def get() -> list[Message]:
        scope = {"type": "http", "method": "GET", "path": "/v1/jobs/job_1"}
        scope |= {"query_string": b"", "headers": [], "state": {}}
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        await layer(scope, _no_body, send)
        return sent

    async def many() -> list[list[Message]]:
        return await asyncio.gather(*(get() for _ in range(10)))

    answers = asyncio.run(many())
    assert calls == 1
    assert all([m["type"] for m in sent] == [START, BODY] for sent in answers)
    assert {sent[1]["body"] for sent in answers} == {b"job"}
    asyncio.run(cache.close())


def test_requests_wait_only_for_a_route_whose_answer_may_be_kept(tmp_path: Path) -> None:
    """A GET whose route keeps nothing (a stream of a job's events, open for minutes)
    holds up no other request of its caller for the same resource."""
    url = f"sqlite:///{tmp_path / 'node.sqlite3'}"
    commit(make_engine(url), "CREATE TABLE t (n INTEGER)")
    cache = ReadCache(url)
    inside = 0

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal inside
        inside += 1
        await send({"type": START, "status": 200, "headers": []})
        await release.wait()
        await send({"type": BODY, "body": b"events"})

    layer = CachedReads(stream, cache, principal_of=lambda request: "caller")

    async def follow() -> None:
        scope = {"type": "http", "method": "GET", "path": "/v1/jobs/job_1/events"}
        scope |= {"query_string": b"follow=true", "headers": [], "state": {}}

        async def send(message: Message) -> None:
            pass

        await layer(scope, _no_body, send)

    async def many() -> int:
        followers = [asyncio.create_task(follow()) for _ in range(3)]
        await asyncio.sleep(0.05)
        entered = inside
        release.set()
        await asyncio.gather(*followers)
        return entered

    release = asyncio.Event()
    assert asyncio.run(many()) == 3
    asyncio.run(cache.close())


START, BODY = "http.response.start", "http.response.body"


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def test_sqlite_reads_and_rollbacks_change_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'node.sqlite3'}"
    engine = make_engine(url)
    commit(engine, "CREATE TABLE t (n INTEGER)")
    cache = ReadCache(url)
    cache.put("k", asyncio.run(cache.version()), b"kept")
    with engine.begin() as conn:
        conn.execute(text("SELECT n FROM t")).all()
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO t VALUES (3)"))
        conn.rollback()
    assert asyncio.run(cache.get("k")) == b"kept"
    asyncio.run(cache.close())
    engine.dispose()


@pytest.mark.postgres
def test_postgres_readers_asking_at_once_share_round_trips(db: tuple[str, Engine]) -> None:
    """Readers that ask while a snapshot query is under way wait for the next one: each
    gets a snapshot taken after it asked, and a commit made before it asked is seen."""
    url, engine = db
    cache = ReadCache(url)
    queries = 0
    source = cache._source
    ask = source._ask  # type: ignore[union-attr]

    async def counted() -> None:
        nonlocal queries
        queries += 1
        await ask()

    source._ask = counted  # type: ignore[union-attr]

    async def many() -> None:
        before = await cache.version()
        commit(engine, "INSERT INTO t VALUES (1)")
        snapshots = await asyncio.gather(*(cache.version() for _ in range(50)))
        assert None not in snapshots and before not in snapshots

    asyncio.run(many())
    assert queries <= 3  # the first reader's query, then one for all who asked meanwhile
    asyncio.run(cache.close())


def test_the_newest_used_answers_are_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'node.sqlite3'}"
    cache = ReadCache(url, max_entries=2)

    async def check() -> None:
        version = await cache.version()
        cache.put("a", version, b"a")
        cache.put("b", version, b"b")
        assert await cache.get("a") == b"a"  # used: "b" is now the oldest
        cache.put("c", version, b"c")
        assert [await cache.get(k) for k in "abc"] == [b"a", None, b"c"]
        await cache.close()

    asyncio.run(check())


def test_off_without_a_database_file_or_room() -> None:
    for cache in (ReadCache("sqlite:///:memory:"), ReadCache("sqlite:////tmp/x.db", 0)):
        assert not cache.enabled and asyncio.run(cache.version()) is None
        cache.put("k", None, b"x")
        assert asyncio.run(cache.get("k")) is None
