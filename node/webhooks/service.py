"""Rules of webhooks: subscriptions, the outbox written with each job event, signatures,
target checks and the outcome of each try. The sender (`node.webhooks.sender`) sends.

- Events: `job.<type>` for the job event types below; patterns use `*` (`job.*`).
- A subscription belongs to a workspace (its jobs) and to the user who made it (their
  jobs without a workspace); it never sees another workspace's jobs.
- The outbox row is added in the transaction that records the job event (a session hook,
  `install`): committed together or not at all. Its body is fixed then: every try sends
  the same bytes under the same `X-DCM-Delivery` id, signed afresh
  (`X-DCM-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>`).
- Targets on loopback, RFC 1918, link-local (or other non-global) addresses, or names
  resolving there, are refused unless `webhook_private_targets_allowed` (development).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import functools
import hashlib
import hmac
import ipaddress
import json
import random
import secrets
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Select, bindparam, event, inspect, or_, select
from sqlalchemy.orm import NO_VALUE, Session, sessionmaker

from marketplace.errors import WebhookNotFound, WebhookTargetRefused
from node.auth.principal import Principal
from node.authz.policy import Action, authorize, effective_role
from node.config import EventSettings, NodeSettings
from node.db import on_new, utcnow
from node.jobs.schemas import JobV1
from node.models.jobs import Job, JobEvent
from node.models.webhooks import Webhook, WebhookDelivery
from node.notifier import Notifier
from node.workspaces.service import personal_workspace_id

EVENT_TYPES = (
    "created",
    "funded",
    "claimed",
    "started",
    "progress",
    "submitted",
    "completed",
    "failed",
    "cancelled",
    "expired",
)
EVENT_NAMES = tuple(f"job.{t}" for t in EVENT_TYPES)
WEBHOOKS_TOPIC = "webhooks"
_PENDING_EVENTS = "dcm_webhook_events"
_QUEUED = "dcm_webhook_queued"


def valid_pattern(pattern: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for name in EVENT_NAMES)


def matches(patterns: list[str], name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


# --------------------------------------------------------------------------- targets


def check_target(url: str, allow_private: bool) -> None:
    """Refuse a URL that is not http(s), or whose host is or resolves to a non-global
    address (unless `allow_private`). Checked at subscription and before every send (a
    name may move)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookTargetRefused("The webhook URL must be http(s)://host/...")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise WebhookTargetRefused(f"The webhook host does not resolve: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global or address.is_multicast:
            raise WebhookTargetRefused(
                "The webhook URL points into a private, loopback or link-local range",
                details={"address": str(address)},
            )


# --------------------------------------------------------------------------- subscriptions


def create_webhook(
    session: Session,
    settings: NodeSettings,
    principal: Principal,
    *,
    url: str,
    events: list[str],
    secret: str,
    workspace_id: int | None,
) -> Webhook:
    if workspace_id is None:
        workspace_id = principal.workspace_id or personal_workspace_id(session, principal)
    authorize(session, principal, workspace_id, Action.CREATE_JOB)
    check_target(url, settings.webhook_private_targets_allowed)
    hook = Webhook(
        workspace_id=workspace_id,
        user_id=principal.user_id,
        url=url,
        events=list(dict.fromkeys(events)),
        secret=secret.encode(),
        active=True,
        consecutive_failures=0,
        created_at=utcnow(),
    )
    session.add(hook)
    session.flush()
    return hook


def create_job_webhook(
    session: Session,
    settings: NodeSettings,
    job: Job,
    *,
    url: str,
    token: str | None,
    client_job_id: str | None,
) -> Webhook:
    """A webhook for one job only (seed 004's `parameters.webhook`): its progress and end
    go through the same outbox, retries and target checks as subscriptions."""
    check_target(url, settings.webhook_private_targets_allowed)
    hook = Webhook(
        workspace_id=job.workspace_id,
        user_id=job.created_by,
        job_id=job.id,
        url=url,
        events=list(JOB_WEBHOOK_EVENTS),
        secret=secrets.token_bytes(32),
        bearer_token=token,
        client_job_id=client_job_id,
        active=True,
        consecutive_failures=0,
        created_at=utcnow(),
    )
    session.add(hook)
    session.flush()
    return hook


def readable_webhooks(session: Session, principal: Principal) -> list[Webhook]:
    rows = session.scalars(
        select(Webhook).where(Webhook.job_id.is_(None)).order_by(Webhook.id)
    ).all()
    out = []
    for hook in rows:
        if hook.workspace_id is not None:
            if principal.workspace_id not in (None, hook.workspace_id):
                continue
            if effective_role(session, principal, hook.workspace_id) is not None:
                out.append(hook)
        elif hook.user_id == principal.user_id:
            out.append(hook)
    return out


def get_webhook(session: Session, principal: Principal, webhook_id: int, action: Action) -> Webhook:
    hook = session.get(Webhook, webhook_id)
    if hook is None or hook not in readable_webhooks(session, principal):
        raise WebhookNotFound()
    if hook.workspace_id is not None:
        authorize(session, principal, hook.workspace_id, action)
    return hook


def delete_webhook(session: Session, principal: Principal, webhook_id: int) -> None:
    session.delete(get_webhook(session, principal, webhook_id, Action.CREATE_JOB))
    session.flush()


def list_deliveries(
    session: Session, principal: Principal, webhook_id: int, limit: int = 100
) -> list[WebhookDelivery]:
    hook = get_webhook(session, principal, webhook_id, Action.READ_JOB)
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.webhook_id == hook.id)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
            .limit(limit)
        )
    )


def redeliver(
    session: Session,
    settings: NodeSettings,
    principal: Principal,
    webhook_id: int,
    delivery_id: str,
) -> WebhookDelivery:
    """Send a delivery again (same id, same body), with a fresh retry window; re-enables a
    disabled subscription."""
    hook = get_webhook(session, principal, webhook_id, Action.CREATE_JOB)
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.webhook_id != hook.id:
        raise WebhookNotFound("Delivery not found")
    now = utcnow()
    hook.active, hook.disabled_reason, hook.consecutive_failures = True, None, 0
    delivery.status = "pending"
    delivery.next_attempt_at = now
    delivery.expires_at = now + dt.timedelta(hours=settings.events.webhook_retry_hours)
    session.flush()
    session.info[_QUEUED] = True
    return delivery


# --------------------------------------------------------------------------- outbox


def delivery_body(delivery_id: str, name: str, ev: JobEvent, job: Job) -> bytes:
    body = {
        "id": delivery_id,
        "type": name,
        "created_at": ev.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "data": {
            **JobV1.from_job(job).model_dump(mode="json", by_alias=True),
            "event": {"seq": ev.seq, "message": ev.message, "data": ev.data},
        },
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


# Per-job webhooks (seed 004's `parameters.webhook`) hear these events, in seed 004's words.
JOB_WEBHOOK_EVENTS = ["job.started", "job.progress", "job.completed", "job.failed", "job.cancelled"]


def job_webhook_body(hook: Webhook, ev: JobEvent, job: Job) -> bytes:
    """Seed 004's payloads: progress `{"phase": "processing", "progress", "message",
    "process": {"id"}}`, the end `{"phase": "completed" | "failed", "message", "data"}`
    (`data`: the structured result); `jobId` echoes the client's own id when it gave one."""
    job_ref = f"job_{job.id}"
    if ev.type in ("progress", "started"):
        percent = (ev.data or {}).get("percent")
        body: dict[str, Any] = {
            "phase": "processing",
            "progress": 0 if percent is None else percent,
            "message": ev.message or "Processing",
            "process": {"id": job_ref},
        }
    elif ev.type == "completed":
        result = job.result or {}
        body = {
            "phase": "completed",
            "message": "Processing completed",
            "data": result.get("structured_data", result),
        }
    else:
        body = {
            "phase": "failed",
            "message": job.error or ev.message or ev.type,
            "data": None,
        }
    if hook.client_job_id:
        body["jobId"] = hook.client_job_id
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@functools.cache
def _subscriptions(owner: str) -> Select[tuple[int, list[str], int | None]]:
    """The id, event patterns and job of each active subscription an event of these jobs
    may go to: those of the jobs' owner (their workspace's; for jobs without one, their
    creator's) that name no job, and those that name one of the jobs (`:event_jobs`).
    Built once per kind of owner, its values bound per read: the events of a commit with
    one owner (a job's claim and start, a batch of creates) take one read, on the
    connection (Core: the ORM's result set-up for whole rows, almost always none, was a
    third of it; py-spy on bench/dispatch.py)."""
    hook = Webhook.__table__.c
    if owner == "workspace":
        owns = hook.workspace_id == bindparam("owner_workspace")
    elif owner == "user":
        user = bindparam("owner_user")
        owns = or_(hook.workspace_id.is_(None) & (hook.user_id == user), hook.user_id == user)
    else:
        owns = hook.workspace_id.is_(None) & hook.user_id.is_(None)
    return select(hook.id, hook.events, hook.job_id).where(
        or_(
            owns & hook.job_id.is_(None),
            hook.job_id.in_(bindparam("event_jobs", expanding=True)),
        ),
        hook.active.is_(True),
    )


def _owner(job: Job) -> tuple[str, dict[str, int]]:
    if job.workspace_id is not None:
        return "workspace", {"owner_workspace": job.workspace_id}
    if job.created_by is not None:
        return "user", {"owner_user": job.created_by}
    return "nobody", {}


def _job_of(session: Session, ev: JobEvent) -> Job | None:
    """The job of `ev`: the one it was built with, where it was (a batch of creates' new
    rows, which are not their session's: `node.db.inserted`), else the session's."""
    job = inspect(ev).attrs.job.loaded_value
    return session.get(Job, ev.job_id) if job is NO_VALUE else job


def enqueue(session: Session, settings: EventSettings, events: list[JobEvent]) -> int:
    """Add the outbox rows of job events (each subscription that wants each of them):
    one read of the subscriptions per owner among their jobs."""
    by_owner: dict[tuple[str, tuple[tuple[str, int], ...]], list[tuple[JobEvent, Job]]] = {}
    for ev in events:
        if ev.type not in EVENT_TYPES:
            continue
        job = _job_of(session, ev)
        if job is None:
            continue
        shape, values = _owner(job)
        by_owner.setdefault((shape, tuple(values.items())), []).append((ev, job))
    wanted: list[tuple[JobEvent, Job, str, list[int]]] = []
    for (shape, values), group in by_owner.items():
        jobs = sorted({job.id for _, job in group})
        found = session.connection().execute(
            _subscriptions(shape), {**dict(values), "event_jobs": jobs}
        )
        hooks = found.all()
        for ev, job in group:
            name = f"job.{ev.type}"
            ids = [
                hook_id
                for hook_id, patterns, for_job in hooks
                if for_job in (None, job.id) and matches(patterns, name)
            ]
            if ids:
                wanted.append((ev, job, name, ids))
    if not wanted:
        return 0
    all_ids = {hook_id for *_, ids in wanted for hook_id in ids}
    webhooks = {h.id: h for h in session.scalars(select(Webhook).where(Webhook.id.in_(all_ids)))}
    count = 0
    now = utcnow()
    expires = now + dt.timedelta(hours=settings.webhook_retry_hours)
    for ev, job, name, ids in wanted:
        for hook_id in ids:
            hook = webhooks[hook_id]
            delivery_id = "whd_" + secrets.token_hex(16)
            body = (
                delivery_body(delivery_id, name, ev, job)
                if hook.job_id is None
                else job_webhook_body(hook, ev, job)
            )
            session.add(
                WebhookDelivery(
                    id=delivery_id,
                    webhook_id=hook.id,
                    job_id=job.id,
                    event_seq=ev.seq,
                    type=name,
                    body=body,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    history=[],
                    created_at=now,
                    expires_at=expires,
                )
            )
            count += 1
    return count


def install(factory: sessionmaker[Session], settings: EventSettings, notifier: Notifier) -> None:
    """Write the outbox rows of each job event in its transaction; wake the sender after
    the commit."""

    def _new_rows(session: Session, new: Sequence[Any]) -> None:
        events = [o for o in new if isinstance(o, JobEvent) and o.type in EVENT_TYPES]
        if events:
            session.info.setdefault(_PENDING_EVENTS, []).extend(events)

    on_new(factory, _new_rows)

    @event.listens_for(factory, "before_commit")
    def _before_commit(session: Session) -> None:
        session.flush()
        pending = session.info.pop(_PENDING_EVENTS, None)
        if pending and enqueue(session, settings, pending):
            session.flush()
            session.info[_QUEUED] = True

    @event.listens_for(factory, "after_commit")
    def _after_commit(session: Session) -> None:
        if session.info.pop(_QUEUED, False):
            notifier.notify(WEBHOOKS_TOPIC)

    @event.listens_for(factory, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop(_PENDING_EVENTS, None)
        session.info.pop(_QUEUED, None)


# --------------------------------------------------------------------------- sending


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def backoff(settings: EventSettings, attempts: int) -> float:
    ceiling = min(
        settings.webhook_backoff_max_seconds,
        settings.webhook_backoff_base_seconds * 2 ** max(0, attempts - 1),
    )
    return ceiling * random.uniform(0.5, 1.0)


def record_outcome(
    session: Session,
    settings: EventSettings,
    delivery: WebhookDelivery,
    *,
    status_code: int | None,
    latency_ms: int,
    error: str | None,
) -> None:
    """Note one try: delivered on 2xx, else retried with backoff until the window ends;
    the subscription is disabled after `webhook_disable_after_failures` failures in a row."""
    now = utcnow()
    hook = session.get(Webhook, delivery.webhook_id)
    delivery.attempts += 1
    delivery.last_status_code = status_code
    delivery.last_latency_ms = latency_ms
    delivery.last_error = error
    entry = {"at": now.isoformat(), "status": status_code, "latency_ms": latency_ms}
    if error:
        entry["error"] = error[:200]
    delivery.history = [*(delivery.history or [])[-19:], entry]
    ok = status_code is not None and 200 <= status_code < 300
    if ok:
        delivery.status = "delivered"
        delivery.delivered_at = now
        delivery.next_attempt_at = None
        if hook is not None:
            hook.consecutive_failures = 0
        return
    if hook is not None:
        hook.consecutive_failures += 1
        if hook.consecutive_failures >= settings.webhook_disable_after_failures:
            hook.active = False
            hook.disabled_reason = (
                f"disabled after {hook.consecutive_failures} failed deliveries in a row"
            )
    retry_at = now + dt.timedelta(seconds=backoff(settings, delivery.attempts))
    if retry_at > delivery.expires_at:
        delivery.status = "failed"
        delivery.next_attempt_at = None
    else:
        delivery.next_attempt_at = retry_at
