"""Webhooks (issue 13, scope 4): signed deliveries from the outbox, retried under one
delivery id until the receiver takes them, never another workspace's events, private
targets refused in production, secrets never shown again, subscriptions disabled after
failures in a row."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from node.config import EventSettings, NodeSettings
from tests.fixtures.app import create_app
from tests.fixtures.factories import signed_in
from tests.fixtures.receiver import Receiver

SECRET = "whsec_0123456789abcdef"
FAST = EventSettings(webhook_backoff_base_seconds=0.05, webhook_backoff_max_seconds=0.1)


@pytest.fixture
def fast_app(settings: NodeSettings) -> FastAPI:
    return create_app(settings.model_copy(update={"events": FAST}))


@pytest.fixture
def fast_client(fast_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(fast_app) as c:
        yield c


def verify(secret: str, header: str, body: bytes, tolerance: float = 300) -> bool:
    """What a receiver does, with the standard library only."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    if abs(time.time() - int(parts["t"])) > tolerance:
        return False
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts["v1"])


def _subscribe(client: TestClient, headers: dict[str, str], url: str, events: list[str]) -> dict:
    resp = client.post(
        "/v1/webhooks", json={"url": url, "events": events, "secret": SECRET}, headers=headers
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["data"]


def _job(client: TestClient, headers: dict[str, str]) -> str:
    resp = client.post(
        "/v1/jobs", json={"type": "image_processing", "payload": {}}, headers=headers
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["data"]["id"]


def test_a_receiver_failing_three_times_gets_the_delivery_once_more_same_id(
    fast_app: FastAPI, fast_client: TestClient
) -> None:
    receiver = Receiver([500, 503, 502])
    try:
        headers = signed_in(fast_app, fast_client)
        hook = _subscribe(fast_client, headers, receiver.url, ["job.created"])
        assert "secret" not in hook and hook["hasSecret"] is True
        job_id = _job(fast_client, headers)
        calls = receiver.wait_for(4)
        fast_app.state.runtime.webhook_sender.wake()  # one more pass: nothing left to send
        time.sleep(1.5)
        calls = receiver.calls
        assert len(calls) == 4
        ids = {c["headers"]["X-DCM-Delivery"] for c in calls}
        assert len(ids) == 1
        assert len({c["body"] for c in calls}) == 1  # the same bytes every try
        for call in calls:
            assert call["headers"]["X-DCM-Event"] == "job.created"
            assert verify(SECRET, call["headers"]["X-DCM-Signature"], call["body"])
            assert not verify(
                "another-secret-123", call["headers"]["X-DCM-Signature"], call["body"]
            )
        body = json.loads(calls[-1]["body"])
        assert body["id"] == ids.pop() and body["type"] == "job.created"
        assert body["data"]["id"] == job_id and body["data"]["status"] == "pending"
        assert set(body) == {"id", "type", "created_at", "data"}

        deliveries = fast_client.get(
            f"/v1/webhooks/{hook['id']}/deliveries", headers=headers
        ).json()["data"]
        (d,) = deliveries
        assert d["status"] == "delivered" and d["attempts"] == 4
        assert d["lastStatusCode"] == 200 and d["lastLatencyMs"] is not None
        assert [h["status"] for h in d["history"]] == [500, 503, 502, 200]

        again = fast_client.post(
            f"/v1/webhooks/{hook['id']}/deliveries/{d['id']}/redeliver", headers=headers
        )
        assert again.status_code == 200, again.text
        fifth = receiver.wait_for(5)[-1]
        assert fifth["headers"]["X-DCM-Delivery"] == d["id"] and fifth["body"] == calls[0]["body"]
    finally:
        receiver.close()


def test_a_subscription_never_receives_another_workspaces_events(
    fast_app: FastAPI, fast_client: TestClient
) -> None:
    mine, theirs = Receiver(), Receiver()
    try:
        alice = signed_in(fast_app, fast_client)
        bob = signed_in(fast_app, fast_client)
        _subscribe(fast_client, alice, mine.url, ["job.*"])
        _subscribe(fast_client, bob, theirs.url, ["job.*"])
        alice_jobs = {_job(fast_client, alice) for _ in range(3)}
        bob_job = _job(fast_client, bob)
        fast_client.post(f"/v1/jobs/{bob_job}/cancel", headers=bob)
        got_mine = mine.wait_for(3)
        got_theirs = theirs.wait_for(2)
        fast_app.state.runtime.webhook_sender.wake()
        time.sleep(1.0)
        assert {json.loads(c["body"])["data"]["id"] for c in mine.calls} == alice_jobs
        assert {json.loads(c["body"])["data"]["id"] for c in theirs.calls} == {bob_job}
        assert [json.loads(c["body"])["type"] for c in got_theirs] == [
            "job.created",
            "job.cancelled",
        ]
        assert len(got_mine) == len(mine.calls) == 3
        # and the lists are each owner's own
        listed = fast_client.get("/v1/webhooks", headers=bob).json()["data"]
        assert [h["url"] for h in listed] == [theirs.url]
    finally:
        mine.close()
        theirs.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
    ],
)
def test_a_private_range_target_is_refused_in_production(settings: NodeSettings, url: str) -> None:
    prod = settings.model_copy(
        update={
            "environment": "production",
            "secret_key": SecretStr("p" * 40),
            "public_url": "http://testserver",
        }
    )
    app = create_app(prod)
    with TestClient(app) as client:
        headers = signed_in(app, client)
        resp = client.post(
            "/v1/webhooks",
            json={"url": url, "events": ["job.*"], "secret": SECRET},
            headers=headers,
        )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "WEBHOOK_TARGET_REFUSED"


def test_unknown_events_are_refused_and_a_failing_subscription_is_disabled(
    settings: NodeSettings,
) -> None:
    events = FAST.model_copy(update={"webhook_disable_after_failures": 2})
    app = create_app(settings.model_copy(update={"events": events}))
    receiver = Receiver([500] * 50)
    try:
        with TestClient(app) as client:
            headers = signed_in(app, client)
            bad = client.post(
                "/v1/webhooks",
                json={"url": receiver.url, "events": ["job.exploded"], "secret": SECRET},
                headers=headers,
            )
            assert bad.status_code == 400, bad.text
            hook = _subscribe(client, headers, receiver.url, ["job.created"])
            _job(client, headers)
            receiver.wait_for(2)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                (listed,) = client.get("/v1/webhooks", headers=headers).json()["data"]
                if not listed["active"]:
                    break
                time.sleep(0.05)
            assert listed["active"] is False and "2 failed" in listed["disabledReason"]
            assert "secret" not in json.dumps(listed).lower().replace("hassecret", "")
            gone = client.delete(f"/v1/webhooks/{hook['id']}", headers=headers)
            assert gone.status_code == 200
            assert client.get("/v1/webhooks", headers=headers).json()["data"] == []
    finally:
        receiver.close()


def test_the_outbox_row_commits_with_its_event_or_not_at_all(fast_app: FastAPI) -> None:
    from sqlalchemy import func, select

    from node.db import session_scope
    from node.jobs.service import create_job
    from node.models.webhooks import Webhook, WebhookDelivery

    factory = fast_app.state.runtime.sessionmaker
    with TestClient(fast_app) as client:
        headers = signed_in(fast_app, client)
        _subscribe(client, headers, "http://127.0.0.1:9/never", ["job.created"])
        with session_scope(factory) as session:
            workspace_id = session.scalars(select(Webhook.workspace_id)).one()
        with pytest.raises(RuntimeError), session_scope(factory) as session:
            create_job(session, job_type="image_processing", workspace_id=workspace_id)
            raise RuntimeError("the request fails after the event was flushed")
        with session_scope(factory) as session:
            assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
            create_job(session, job_type="image_processing", workspace_id=workspace_id)
        with session_scope(factory) as session:
            assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1


def test_every_event_of_one_commit_gets_its_outbox_rows(fast_app: FastAPI) -> None:
    """Creates written together (`node.jobs.creates`) commit many events at once: each
    gets its delivery, and a subscription of another owner none of them."""
    from sqlalchemy import select

    from node.db import session_scope
    from node.jobs.service import create_job
    from node.models.webhooks import Webhook, WebhookDelivery

    factory = fast_app.state.runtime.sessionmaker
    with TestClient(fast_app) as client:
        headers = signed_in(fast_app, client)
        _subscribe(client, headers, "http://127.0.0.1:9/never", ["job.created"])
        _subscribe(client, signed_in(fast_app, client), "http://127.0.0.1:9/other", ["job.*"])
        with session_scope(factory) as session:
            workspace_id = session.scalars(select(Webhook.workspace_id)).first()
        with session_scope(factory) as session:
            jobs = [
                create_job(session, job_type="image_processing", workspace_id=workspace_id)
                for _ in range(3)
            ]
            ids = sorted(j.id for j in jobs)
        with session_scope(factory) as session:
            rows = session.execute(select(WebhookDelivery.job_id, WebhookDelivery.type)).all()
    assert sorted(rows) == [(i, "job.created") for i in ids]


def test_one_subscriptions_deliveries_go_in_order_and_stop_at_its_first_failure(
    fast_app: FastAPI, fast_client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing receiver gets one try a pass (the rest wait out their lease), and no send
    starts once the pass is `GROUP_SECONDS` past its lease."""
    from node.webhooks import sender as sender_module

    sender = fast_app.state.runtime.webhook_sender
    tried: list[str] = []
    answers = iter([True, False, True])
    monkeypatch.setattr(sender, "_send", lambda item: tried.append(item[0]) or next(answers))
    group = [(f"d{i}", "http://example.invalid/", b"", b"", "job.created", None) for i in range(3)]
    sender._send_in_order(time.monotonic(), group)
    assert tried == ["d0", "d1"]  # d2 waits: the receiver just failed d1

    tried.clear()
    late = time.monotonic() - sender_module.GROUP_SECONDS - 1
    sender._send_in_order(late, group)
    assert tried == []  # past the pass's window, nothing more is sent on this lease
