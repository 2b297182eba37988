"""Webhook endpoint, delivery and audit-event schemas."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from numberplane.kernel.outbox import EVENT_TYPES
from numberplane.kernel.schemas import HttpUrl, Model

MAX_EVENT_TYPES = len(EVENT_TYPES)


def _check_types(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    unknown = [t for t in value if t not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}")
    # Keep the caller's order, drop repeats.
    return list(dict.fromkeys(value))


class WebhookEndpointCreate(Model):
    url: HttpUrl = Field(description="Where events are POSTed.")
    event_types: list[str] = Field(
        default_factory=list,
        max_length=MAX_EVENT_TYPES,
        description="The event types wanted; empty (the default) means every type.",
    )
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = True

    _types = field_validator("event_types")(_check_types)


class WebhookEndpointUpdate(Model):
    """Partial: an absent field is unchanged."""

    url: HttpUrl | None = None
    event_types: list[str] | None = Field(default=None, max_length=MAX_EVENT_TYPES)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None

    _types = field_validator("event_types")(_check_types)


class WebhookEndpointRead(BaseModel):
    id: str
    url: str
    event_types: list[str] = Field(description="Empty means every type.")
    description: str | None = None
    enabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class WebhookEndpointCreated(WebhookEndpointRead):
    secret: str = Field(
        description="The Standard Webhooks signing secret (whsec_...). Shown only in this response."
    )


class WebhookDeliveryRead(BaseModel):
    id: str
    endpoint_id: str
    event_id: str = Field(description="Also the webhook-id header: the same on every attempt.")
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    next_attempt_at: dt.datetime | None = Field(default=None, description="Set while pending.")
    last_attempt_at: dt.datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    last_duration_ms: int | None = None
    delivered_at: dt.datetime | None = None
    replay: bool = False
    created_at: dt.datetime
    updated_at: dt.datetime


class AuditEventRead(BaseModel):
    id: str
    org_id: str | None
    actor_type: str = Field(description="api_key, user (a person in the console), cli or system.")
    actor_id: str | None = Field(description="The API key id for api_key actors; the email for user actors.")
    via: str = Field(description="The API surface: v1, a dialect name, cli, system.")
    action: str
    target_type: str
    target_id: str | None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    request_id: str | None = None
    created_at: dt.datetime
