"""Following a job's events over a real `dcm serve` (issue 13): resuming with
Last-Event-ID exactly once and in order, across a node restart too, and 100 concurrent
followers each seeing every event in order. The heartbeat is set to a minute, so a
follower that was not woken by the node's notifier would sit until the read timeout and
fail: these pass only if commits wake followers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from marketplace.sdk.events import parse_frames
from tests.fixtures import web
from tests.fixtures.jobflow import leased_job
from tests.fixtures.served import Served

QUIET = {"DCM_EVENTS__STREAM_HEARTBEAT_SECONDS": "60"}


@pytest.fixture
def node(tmp_path: Path, database_url: str) -> Iterator[Served]:
    served = Served(tmp_path / "node", database_url, **QUIET)
    try:
        yield served
    finally:
        served.stop()


def _stored(http: httpx.Client, job: str, headers: dict[str, str]) -> list[int]:
    resp = http.get(f"/v1/jobs/{job}/events", headers=headers)
    assert resp.status_code == 200, resp.text
    return [e["seq"] for e in resp.json()["data"]]


def test_reconnecting_with_last_event_id_resumes_exactly_once_across_a_restart(
    node: Served,
) -> None:
    leased = leased_job(node.url)
    job, headers = leased.job_id, leased.requester
    leased.progress(10, "a")
    leased.progress(20, "b")
    url = f"{node.url}/v1/jobs/{job}/events"
    seen: list[int] = []
    with web.stream(
        "GET", url, params={"follow": "true"}, headers=headers, timeout=httpx.Timeout(20)
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        frames = parse_frames(resp.iter_lines())
        stored = _stored(leased.http, job, headers)
        for frame in frames:
            seen.append(int(frame.id or 0))
            if len(seen) == len(stored):
                break
        leased.progress(30, "c")  # arrives live, through the notifier
        frame = next(frames)
        seen.append(int(frame.id or 0))
        assert frame.event == "progress" and frame.json()["message"] == "c"
    n = seen[-1]
    assert seen == list(range(1, n + 1))

    leased.progress(40, "d")  # while nobody follows
    node.stop()
    restarted = node.restart()
    try:
        leased.http.base_url = httpx.URL(restarted.url)
        leased.progress(50, "e")
        resumed: list[int] = []
        with web.stream(
            "GET",
            url,
            params={"follow": "true"},
            headers={**headers, "Last-Event-ID": str(n)},
            timeout=httpx.Timeout(20),
        ) as resp:
            frames = parse_frames(resp.iter_lines())
            for frame in frames:
                resumed.append(int(frame.id or 0))
                if frame.json()["message"] == "e":
                    break
            cancel = leased.http.post(f"/v1/jobs/{job}/cancel", headers=headers)
            assert cancel.status_code == 200, cancel.text
            rest = list(frames)  # the cancellation, then the end frame closes the stream
        assert [f.event for f in rest] == ["cancelled", "end"]
        resumed.append(int(rest[0].id or 0))
        all_stored = _stored(leased.http, job, headers)
        assert resumed == [s for s in all_stored if s > n]  # exactly once, in order
        after = leased.http.get(
            f"/v1/jobs/{job}/events", params={"after": n}, headers=headers
        ).json()["data"]
        assert [e["seq"] for e in after] == resumed
    finally:
        restarted.stop()


def test_a_hundred_followers_each_see_every_event_in_order(node: Served) -> None:
    leased = leased_job(node.url)
    job, headers = leased.job_id, leased.requester
    followers = 100
    writes = 20

    async def run() -> list[list[int]]:
        limits = httpx.Limits(max_connections=followers + 10)
        async with httpx.AsyncClient(
            base_url=node.url, limits=limits, timeout=httpx.Timeout(30)
        ) as http:
            ready = asyncio.Semaphore(0)

            async def follower() -> list[int]:
                seqs: list[int] = []
                async with http.stream(
                    "GET", f"/v1/jobs/{job}/events", params={"follow": "true"}, headers=headers
                ) as resp:
                    assert resp.status_code == 200
                    signalled = False
                    block: list[str] = []
                    async for line in resp.aiter_lines():
                        if line.startswith("retry:") and not signalled:
                            ready.release()
                            signalled = True
                        block.append(line)
                        if line == "":
                            for frame in parse_frames(block):
                                if frame.event == "end":
                                    return seqs
                                seqs.append(int(frame.id or 0))
                            block = []
                return seqs

            tasks = [asyncio.create_task(follower()) for _ in range(followers)]
            for _ in range(followers):
                await asyncio.wait_for(ready.acquire(), 60)

            def write() -> None:
                for i in range(writes):
                    leased.progress(i * 100 / writes, f"step {i}")
                cancel = leased.http.post(f"/v1/jobs/{job}/cancel", headers=headers)
                assert cancel.status_code == 200, cancel.text

            await asyncio.to_thread(write)
            return await asyncio.gather(*tasks)

    results = asyncio.run(run())
    stored = _stored(leased.http, job, headers)
    assert len(stored) >= writes + 3  # created, claimed, started..., 20 progress, cancelled
    for seqs in results:
        assert seqs == stored


def test_an_idle_stream_carries_heartbeat_comments_and_logs_follow_too(
    tmp_path: Path, database_url: str
) -> None:
    served = Served(tmp_path / "hb", database_url, DCM_EVENTS__STREAM_HEARTBEAT_SECONDS="0.2")
    try:
        leased = leased_job(served.url)
        leased.log("before", stream="stdout")
        lines: list[str] = []
        with web.stream(
            "GET",
            f"{served.url}/v1/jobs/{leased.job_id}/logs",
            params={"follow": "true"},
            headers=leased.requester,
            timeout=httpx.Timeout(20),
        ) as resp:
            for line in resp.iter_lines():
                lines.append(line)
                if line.startswith(": keep-alive"):
                    break
        frames = list(parse_frames(lines))
        assert [(f.event, f.json()["message"]) for f in frames] == [("log", "before")]
        assert frames[0].json()["stream"] == "stdout"
    finally:
        served.stop()
