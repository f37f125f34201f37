"""The webhook sender: a loop service that sends the outbox's due deliveries after their
commit (woken by the notifier's `webhooks` topic, else every `loop_seconds`), up to
`events.webhook_concurrency` at once on its own threads, so that a slow or dead receiver
holds one sending slot and never a request. Each try's outcome is recorded
(`node.webhooks.service.record_outcome`). A delivery is leased (its next try pushed past
the timeout) before it is sent, so a second node replica does not send it at once too."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import functools
import logging
import time

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from marketplace.errors import WebhookTargetRefused
from node.config import NodeSettings
from node.db import session_scope, utcnow
from node.metrics import WEBHOOK_DELIVERIES
from node.models.webhooks import Webhook, WebhookDelivery
from node.services import LoopService
from node.webhooks import service

log = logging.getLogger("dcm.webhooks")
BATCH = 200
# a leased delivery: id, target URL, secret, body, event type, per-job bearer token
Outgoing = tuple[str, str, bytes, bytes, str, str | None]
GROUP_SECONDS = 30.0  # a pass starts no send later than this after leasing it


class WebhookSender(LoopService):
    name = "webhook-sender"
    run_at_start = True

    def __init__(
        self, sessions: sessionmaker[Session], settings: NodeSettings, loop_seconds: float = 1.0
    ) -> None:
        super().__init__(loop_seconds)
        self.sessions = sessions
        self.settings = settings
        self.pool = concurrent.futures.ThreadPoolExecutor(
            settings.events.webhook_concurrency, thread_name_prefix="webhook"
        )

    async def stop(self) -> None:
        await super().stop()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if "http" in self.__dict__:
            self.http.close()

    @functools.cached_property
    def http(self) -> httpx.Client:
        """Made at the first delivery: building its TLS context costs ~80 ms of every
        start, and most nodes have no webhook."""
        return httpx.Client(
            timeout=self.settings.events.webhook_timeout_seconds, follow_redirects=False
        )

    def _lease_due(self) -> list[list[Outgoing]]:
        """The due deliveries, leased, grouped by subscription in the order they fell due."""
        now = utcnow()
        lease = dt.timedelta(seconds=self.settings.events.webhook_timeout_seconds + GROUP_SECONDS)
        with session_scope(self.sessions) as session:
            rows = session.execute(
                select(WebhookDelivery, Webhook)
                .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
                .where(
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                    Webhook.active.is_(True),
                )
                .order_by(
                    WebhookDelivery.next_attempt_at,
                    WebhookDelivery.job_id,
                    WebhookDelivery.event_seq,
                )
                .limit(BATCH)
                .with_for_update(skip_locked=True, of=WebhookDelivery)
            ).all()
            groups: dict[int, list[Outgoing]] = {}
            for delivery, hook in rows:
                delivery.next_attempt_at = now + lease
                groups.setdefault(hook.id, []).append(
                    (
                        delivery.id,
                        hook.url,
                        hook.secret,
                        delivery.body,
                        delivery.type,
                        hook.bearer_token,
                    )
                )
            return list(groups.values())

    def _send(self, item: Outgoing) -> bool:
        """Try one delivery and record its outcome; True if the receiver took it."""
        delivery_id, url, secret, body, name, bearer = item
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            service.check_target(url, self.settings.webhook_private_targets_allowed)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "dcm-webhooks/1",
                "X-DCM-Event": name,
                "X-DCM-Delivery": delivery_id,
                "X-DCM-Signature": service.sign(secret, body, int(time.time())),
            }
            if bearer:  # a per-job webhook's token (seed 004)
                headers["Authorization"] = f"Bearer {bearer}"
            resp = self.http.post(url, content=body, headers=headers)
            status = resp.status_code
        except WebhookTargetRefused as exc:
            error = f"target refused: {exc}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        latency_ms = int((time.monotonic() - started) * 1000)
        with session_scope(self.sessions) as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is not None and delivery.status == "pending":
                service.record_outcome(
                    session,
                    self.settings.events,
                    delivery,
                    status_code=status,
                    latency_ms=latency_ms,
                    error=error,
                )
        failed = bool(error or (status is not None and status >= 300))
        WEBHOOK_DELIVERIES.labels("failure" if failed else "success").inc()
        if failed:
            log.info("webhook delivery %s to %s: %s", delivery_id, url, error or status)
        return not failed

    def _send_in_order(self, leased_at: float, group: list[Outgoing]) -> None:
        """One subscription's deliveries, one after another. After a failure, or from
        `GROUP_SECONDS` after the lease, the rest wait out their lease and are due again
        then: a failing receiver costs one try (one timeout) a pass, and no send can end
        after its delivery's lease (when another replica may have leased it)."""
        for item in group:
            if time.monotonic() - leased_at > GROUP_SECONDS or not self._send(item):
                return

    def run_once(self) -> int:
        """Lease the due deliveries and send them; return how many were leased.
        Subscriptions are served in parallel, each one's deliveries one after another in
        the order they fell due: a receiver sees a job's `created` before its `cancelled`,
        and a slow receiver holds one sending slot however many deliveries it has waiting."""
        leased_at = time.monotonic()
        due = self._lease_due()
        if due:
            list(self.pool.map(functools.partial(self._send_in_order, leased_at), due))
        return sum(len(group) for group in due)
