"""Signing a voice webhook the way each carrier signs the ones it sends (for test calls).

The counterparts of ``routing.verify``: Twilio (and the sandbox) sign form posts with the
account's auth token (``X-Twilio-Signature``, the SDK's own ``RequestValidator``); SignalWire
with its signing key (hex HMAC-SHA1 of URL + body, ``X-SignalWire-Signature``); Vonage sends a
bearer JWT signed with the account's signature secret and carrying the body's SHA-256. Telnyx
signs with its own Ed25519 private key, which no account holder has: Telnyx numbers cannot be
test-called.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt
from twilio.request_validator import RequestValidator

SIGNABLE = ("sandbox", "twilio", "signalwire", "vonage")


class CannotSign(Exception):
    """The account lacks what the carrier would sign with (the message says what)."""


@dataclass(frozen=True)
class SignedRequest:
    method: str
    url: str
    body: bytes
    headers: dict[str, str]


def _form(
    carrier: str, url: str, params: dict[str, str], config: dict[str, Any], creds: dict[str, Any]
) -> SignedRequest:
    body = urlencode(params).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if carrier in ("sandbox", "twilio"):
        token = creds.get("auth_token")
        if not token:
            raise CannotSign("the carrier account has no auth_token to sign with")
        headers["X-Twilio-Signature"] = RequestValidator(token).compute_signature(url, params)
    else:
        key = creds.get("signing_key")
        if not key:
            raise CannotSign("the carrier account has no signing_key to sign with")
        digest = hmac.new(str(key).encode(), url.encode() + body, hashlib.sha1).hexdigest()
        headers["X-SignalWire-Signature"] = digest
    return SignedRequest("POST", url, body, headers)


def account_id_param(carrier: str, config: dict[str, Any]) -> str:
    """The ``AccountSid`` a carrier puts in its form posts for this account."""
    value = config.get("project_id") if carrier == "signalwire" else config.get("account_sid")
    return str(value or "")


def form_call(
    carrier: str,
    url: str,
    params: dict[str, str],
    *,
    config: dict[str, Any],
    credentials: dict[str, Any],
) -> SignedRequest:
    """A Twilio-family voice webhook (sandbox, Twilio, SignalWire), signed."""
    return _form(
        carrier, url, {"AccountSid": account_id_param(carrier, config), **params}, config, credentials
    )


def vonage_call(
    url: str, payload: dict[str, Any], *, config: dict[str, Any], credentials: dict[str, Any]
) -> SignedRequest:
    """A Vonage answer or event webhook: JSON POST with a signed bearer token."""
    secret = credentials.get("signature_secret")
    if not secret:
        raise CannotSign("the carrier account has no signature_secret to sign with")
    body = json.dumps(payload, separators=(",", ":")).encode()
    claims = {
        "iat": int(time.time()),
        "jti": secrets.token_hex(12),
        "api_key": str(config.get("api_key") or ""),
        "application_id": str(config.get("application_id") or uuid.uuid4()),
        "payload_hash": hashlib.sha256(body).hexdigest(),
    }
    token = jwt.encode(claims, str(secret), algorithm="HS256")
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    return SignedRequest("POST", url, body, headers)
