"""`/v1/webhooks`: subscribe to job events (issue 13), list, delete, see deliveries and
redeliver one. Envelopes as the /v1 dialect: `{"success": true, "data": ...}`.

The secret is taken on creation and never shown again (`hasSecret` says one is set).
Subscribing needs a role that creates jobs in the workspace (owner, member); reading one
needs a role that reads its jobs. Without `workspaceId` the subscription is the caller's
personal workspace's (an API key: its own workspace's), and also covers the caller's
jobs without a workspace."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from marketplace.errors import Forbidden, WebhookNotFound, WebhookTargetRefused, WorkspaceNotFound
from node.auth.deps import PrincipalDep
from node.deps import SessionDep, SettingsDep
from node.models.webhooks import Webhook, WebhookDelivery
from node.openapi import raises
from node.webhooks import service

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
# Seed 003 (`POST /api/plugin-core/webhooks`): the same subscriptions, body and answer;
# errors in that dialect's envelope.
plugin_core_router = APIRouter(prefix="/api/plugin-core/webhooks", tags=["webhooks"])


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class WebhookCreate(_Camel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    url: AnyHttpUrl
    events: list[str] = Field(min_length=1, max_length=32, examples=[["job.*"]])
    secret: str = Field(min_length=16, max_length=256)
    workspace_id: int | None = None

    @field_validator("events")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        bad = [p for p in value if not service.valid_pattern(p)]
        if bad:
            raise ValueError(f"unknown events {bad}; known: {', '.join(service.EVENT_NAMES)}")
        return value


class WebhookOut(_Camel):
    id: str
    url: str
    events: list[str]
    workspace_id: int | None
    active: bool
    disabled_reason: str | None
    consecutive_failures: int
    has_secret: bool = True
    created_at: dt.datetime

    @classmethod
    def of(cls, hook: Webhook) -> WebhookOut:
        return cls(
            id=f"wh_{hook.id}",
            url=hook.url,
            events=hook.events,
            workspace_id=hook.workspace_id,
            active=hook.active,
            disabled_reason=hook.disabled_reason,
            consecutive_failures=hook.consecutive_failures,
            created_at=hook.created_at,
        )


class DeliveryOut(_Camel):
    id: str
    type: str
    job_id: str
    event_seq: int
    status: str
    attempts: int
    next_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_latency_ms: int | None
    last_error: str | None
    history: list[dict[str, Any]]
    created_at: dt.datetime
    delivered_at: dt.datetime | None

    @classmethod
    def of(cls, d: WebhookDelivery) -> DeliveryOut:
        return cls(
            id=d.id,
            type=d.type,
            job_id=f"job_{d.job_id}",
            event_seq=d.event_seq,
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            last_status_code=d.last_status_code,
            last_latency_ms=d.last_latency_ms,
            last_error=d.last_error,
            history=d.history or [],
            created_at=d.created_at,
            delivered_at=d.delivered_at,
        )


def _dump(data: Any) -> dict[str, Any]:
    if isinstance(data, list):
        return {"success": True, "data": [d.model_dump(mode="json", by_alias=True) for d in data]}
    return {"success": True, "data": data.model_dump(mode="json", by_alias=True)}


def _id(raw: str) -> int:
    text = raw.removeprefix("wh_")
    if not text.isdigit() or len(text) > 12:
        raise WebhookNotFound()
    return int(text)


WebhookId = Annotated[str, Path(alias="webhookId", description="e.g. wh_3")]


@plugin_core_router.post("", status_code=status.HTTP_201_CREATED)
@router.post("", status_code=status.HTTP_201_CREATED)
@raises(WebhookTargetRefused, Forbidden, WorkspaceNotFound)
def create_webhook(
    body: WebhookCreate, principal: PrincipalDep, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Subscribe `url` to job events (`job.created`, ..., patterns such as `job.*`)."""
    hook = service.create_webhook(
        session,
        settings,
        principal,
        url=str(body.url),
        events=body.events,
        secret=body.secret,
        workspace_id=body.workspace_id,
    )
    return _dump(WebhookOut.of(hook))


@plugin_core_router.get("")
@router.get("")
def list_webhooks(principal: PrincipalDep, session: SessionDep) -> dict[str, Any]:
    return _dump([WebhookOut.of(h) for h in service.readable_webhooks(session, principal)])


@router.delete("/{webhookId}")
@raises(WebhookNotFound, Forbidden)
def delete_webhook(
    webhook_id: WebhookId, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    service.delete_webhook(session, principal, _id(webhook_id))
    return {"success": True, "data": {"id": webhook_id, "deleted": True}}


@router.get("/{webhookId}/deliveries")
@raises(WebhookNotFound)
def list_deliveries(
    webhook_id: WebhookId, principal: PrincipalDep, session: SessionDep
) -> dict[str, Any]:
    """The subscription's latest deliveries: status, tries, last status code and latency."""
    rows = service.list_deliveries(session, principal, _id(webhook_id))
    return _dump([DeliveryOut.of(d) for d in rows])


@router.post("/{webhookId}/deliveries/{deliveryId}/redeliver")
@raises(WebhookNotFound, Forbidden)
def redeliver(
    webhook_id: WebhookId,
    delivery_id: Annotated[str, Path(alias="deliveryId", max_length=40)],
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Send one delivery again: the same id and body, a fresh retry window."""
    delivery = service.redeliver(session, settings, principal, _id(webhook_id), delivery_id)
    return _dump(DeliveryOut.of(delivery))
