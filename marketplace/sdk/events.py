"""Following a job's event stream (`GET /v1/jobs/{id}/events|logs?follow=true`,
text/event-stream) with reconnection: each reconnect sends `Last-Event-ID` with the last
sequence number received, so the node resends exactly what came after it, whether the
connection dropped or the node restarted. The stream's `end` frame (the job reached a
final state) ends the iteration."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from marketplace.errors import UpstreamUnavailable
from marketplace.sdk.http import raise_for_error
from marketplace.sdk.models import Event, LogLine


@dataclass(frozen=True)
class Frame:
    id: str | None
    event: str
    data: str

    def json(self) -> Any:
        return json.loads(self.data) if self.data else None


def parse_frames(lines: Iterable[str]) -> Iterator[Frame]:
    """Server-sent event frames from the lines of a stream (comments skipped)."""
    ident: str | None = None
    event = "message"
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield Frame(ident, event, "\n".join(data))
            ident, event, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            ident = value
        elif name == "event":
            event = value
        elif name == "data":
            data.append(value)


def follow_stream(
    http: httpx.Client,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    after: int | None = None,
    params: dict[str, Any] | None = None,
    reconnect_seconds: float = 1.0,
    max_reconnect_seconds: float = 30.0,
    give_up_after: float | None = 600.0,
) -> Iterator[dict[str, Any]]:
    """Yield each event of the stream at `path` (as JSON) until its `end` frame, resuming
    after the last one received whenever the connection breaks. Gives up (raising
    UpstreamUnavailable) after `give_up_after` seconds without reaching the node."""
    last = after
    wait = reconnect_seconds
    down_since: float | None = None
    while True:
        hdrs = {**(headers or {}), "Accept": "text/event-stream"}
        if last is not None:
            hdrs["Last-Event-ID"] = str(last)
        try:
            with http.stream(
                "GET",
                path,
                params={**(params or {}), "follow": "true"},
                headers=hdrs,
                timeout=httpx.Timeout(30.0, read=None),
            ) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise_for_error(resp)
                down_since, wait = None, reconnect_seconds
                for frame in parse_frames(resp.iter_lines()):
                    if frame.event == "end":
                        return
                    event = frame.json()
                    yield event
                    if frame.id is not None:
                        last = int(frame.id)
        except (httpx.TransportError, UpstreamUnavailable) as exc:
            now = time.monotonic()
            down_since = down_since or now
            if give_up_after is not None and now - down_since > give_up_after:
                raise UpstreamUnavailable(f"GET {path}: {exc!r}") from exc
        time.sleep(wait)
        wait = min(wait * 2, max_reconnect_seconds)


class JobStreams:
    """`NodeClient`'s event stream methods (a mixin: it needs `http`, `_headers()` and
    `request()`)."""

    http: httpx.Client

    def _headers(self) -> dict[str, str]:  # pragma: no cover - NodeClient's
        raise NotImplementedError

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:  # pragma: no cover
        raise NotImplementedError

    def events(
        self, job_id: str | int, *, follow: bool = True, after: int | None = None
    ) -> Iterator[Event]:
        """The job's events (state changes, progress) in order; with `follow` (default)
        until the job reaches a final state, resuming by itself after a dropped
        connection or a node restart."""
        for data in self._job_stream(job_id, "events", follow=follow, after=after):
            yield Event.model_validate(data)

    def logs(
        self,
        job_id: str | int,
        *,
        follow: bool = False,
        after: int | None = None,
        tail: int | None = None,
    ) -> Iterator[LogLine]:
        """The job's log lines (`message`, `level`, `stream`, `seq`); with `follow=True`
        new lines as they come until the job ends, resuming by itself."""
        for data in self._job_stream(job_id, "logs", follow=follow, after=after, tail=tail):
            yield LogLine.model_validate(data)

    def _job_stream(
        self,
        job_id: str | int,
        kind: str,
        *,
        follow: bool,
        after: int | None = None,
        tail: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        ref = job_id if isinstance(job_id, str) and job_id.startswith("job_") else f"job_{job_id}"
        path = f"/v1/jobs/{ref}/{kind}"
        params: dict[str, Any] = {} if tail is None else {"tail": tail}
        if follow:
            yield from follow_stream(
                self.http, path, headers=self._headers(), after=after, params=params
            )
            return
        if after is not None:
            params["after"] = after
        yield from self.request("GET", path, params=params).json()["data"]
