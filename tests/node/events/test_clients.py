"""The clients of the streams (issue 13, scope 5): the SDK's `logs(id, follow=True)`
iterator resumes by itself across a node restart without losing or repeating a line, and
`dcm job logs ID --follow` / `dcm job watch ID` print the stream until the job ends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketplace.sdk.client import NodeClient
from marketplace.sdk.models import LogLine
from tests.fixtures.jobflow import leased_job
from tests.fixtures.keystores import keystore_json
from tests.fixtures.served import Served, run_dcm


@pytest.fixture
def node(tmp_path: Path, database_url: str) -> Iterator[Served]:
    served = Served(tmp_path / "node", database_url, DCM_EVENTS__STREAM_HEARTBEAT_SECONDS="60")
    try:
        yield served
    finally:
        served.stop()


def test_sdk_logs_iterator_resumes_by_itself_across_a_restart(node: Served) -> None:
    leased = leased_job(node.url)
    client = NodeClient(node.url)
    client.token = leased.requester["Authorization"].removeprefix("Bearer ")
    got: list[LogLine] = []
    first_two = threading.Event()
    failure: list[BaseException] = []

    def consume() -> None:
        try:
            for line in client.logs(leased.job_id, follow=True):
                got.append(line)
                if len(got) == 2:
                    first_two.set()
        except BaseException as exc:  # noqa: BLE001 (reported below)
            failure.append(exc)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    leased.log("one", "two", stream="stdout")
    assert first_two.wait(30)
    node.stop()  # the stream breaks; the iterator reconnects on its own
    restarted = node.restart()
    try:
        leased.log("three", level="error", stream="stderr")
        leased.log("four")
        cancel = leased.http.post(f"/v1/jobs/{leased.job_id}/cancel", headers=leased.requester)
        assert cancel.status_code == 200, cancel.text
        reader.join(60)
        assert not reader.is_alive() and not failure, failure
        assert [x.message for x in got] == ["one", "two", "three", "four"]
        assert [x.stream for x in got] == ["stdout", "stdout", "stderr", None]
        assert [x.level for x in got] == ["info", "info", "error", "info"]
        assert len({x.seq for x in got}) == 4
    finally:
        restarted.stop()


def test_cli_logs_and_watch_print_the_streams(node: Served, tmp_path: Path) -> None:
    leased = leased_job(node.url)
    keyfile = tmp_path / "wallet.json"
    keyfile.write_text(keystore_json(leased.account.key, "pw"))
    leased.log("hello", stream="stdout")
    leased.progress(50, "halfway")
    cancel = leased.http.post(f"/v1/jobs/{leased.job_id}/cancel", headers=leased.requester)
    assert cancel.status_code == 200
    args = ["--node", node.url, "--keyfile", str(keyfile), "--password-stdin"]
    out = run_dcm(["job", "logs", leased.job_id, "--follow", *args], node.env, stdin="pw\n")
    assert out.splitlines() == ["[stdout] hello"]
    out = run_dcm(["job", "watch", leased.job_id, *args], node.env, stdin="pw\n")
    lines = out.splitlines()
    assert "progress" in lines[-3] and "halfway" in lines[-3]
    assert "cancelled" in lines[-2] and lines[-1] == f"job {leased.job_id} is cancelled"
