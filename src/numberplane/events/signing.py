"""Standard Webhooks: secrets, the payload envelope, and the three signature headers.

A delivery carries ``webhook-id`` (the event id, the same on every attempt and for every
endpoint, so receivers de-duplicate on it), ``webhook-timestamp`` (seconds, when this attempt
was signed) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of id.timestamp.body>``).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import secrets
from typing import Any

from standardwebhooks import Webhook

from numberplane import __version__
from numberplane.kernel.db import as_utc, utcnow
from numberplane.kernel.outbox import OutboxEvent

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
USER_AGENT = f"Numberplane-Webhooks/{__version__}"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _iso(value: dt.datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


def envelope(event: OutboxEvent) -> dict[str, Any]:
    """The JSON body every endpoint receives for ``event``."""
    return {
        "id": event.id,
        "type": event.type,
        "created_at": _iso(event.created_at),
        "org_id": event.org_id,
        "subject": {"type": event.subject_type, "id": event.subject_id},
        "data": event.data,
    }


def body_for(event: OutboxEvent) -> str:
    return json.dumps(envelope(event), separators=(",", ":"), default=str)


def sign_headers(secret: str, msg_id: str, body: str, at: dt.datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt (signed now, in wall-clock time)."""
    at = at or utcnow()
    timestamp = dt.datetime.fromtimestamp(math.floor(at.timestamp()), dt.UTC)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, timestamp, body),
    }
