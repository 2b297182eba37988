"""Carrier-account requests and responses.

A request carries everything the carrier gave you in one ``credentials`` object (identifiers
and secrets alike). Numberplane splits it: identifiers (account SID, space, project id,
connection ids, Telnyx's public key) become the account's public ``config``; secrets (tokens,
API keys, signing keys) are encrypted at rest and never returned — a response only says which
secrets are set.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from numberplane.kernel.schemas import HttpUrl, Model

CREATABLE = ("twilio", "telnyx", "signalwire", "vonage")
CarrierName = Literal["twilio", "telnyx", "signalwire", "vonage"]


@dataclass(frozen=True)
class Spec:
    secret: bool
    check: Callable[[str], str | None] | None = None  # returns an error message, or None


def _pattern(regex: str, what: str) -> Callable[[str], str | None]:
    compiled = re.compile(regex)

    def check(value: str) -> str | None:
        return None if compiled.fullmatch(value) else f"must be {what}"

    return check


def _ed25519_key(value: str) -> str | None:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "must be the base64 Ed25519 public key from the Telnyx portal"
    return None if len(raw) == 32 else "must be a 32-byte Ed25519 public key, base64-encoded"


FIELDS: dict[str, dict[str, Spec]] = {
    "twilio": {
        "account_sid": Spec(False, _pattern(r"AC[0-9a-fA-F]{32}", "a Twilio account SID (AC + 32 hex)")),
        "auth_token": Spec(True),
        "api_key_sid": Spec(False, _pattern(r"SK[0-9a-fA-F]{32}", "a Twilio API key SID (SK + 32 hex)")),
        "api_key_secret": Spec(True),
    },
    "telnyx": {
        "api_key": Spec(True),
        "texml_application_id": Spec(False, _pattern(r"[A-Za-z0-9_-]{1,64}", "a Telnyx application id")),
        "connection_id": Spec(False, _pattern(r"[A-Za-z0-9_-]{1,64}", "a Telnyx connection id")),
        "messaging_profile_id": Spec(False, _pattern(r"[A-Za-z0-9_-]{1,64}", "a messaging profile id")),
        "public_key": Spec(False, _ed25519_key),
    },
    "signalwire": {
        # A space names a host under signalwire.com and nowhere else: the default API URL is
        # built from it, so any other host name would let a tenant choose where requests go.
        "space": Spec(
            False,
            _pattern(
                r"[a-z0-9][a-z0-9-]{0,62}(\.signalwire\.com)?",
                "your space name (acme for acme.signalwire.com) or its host name under signalwire.com",
            ),
        ),
        "project_id": Spec(False, _pattern(r"[A-Za-z0-9-]{1,64}", "the SignalWire project id")),
        "api_token": Spec(True),
        "signing_key": Spec(True),
    },
    "vonage": {
        "api_key": Spec(False, _pattern(r"[A-Za-z0-9]{1,32}", "the Vonage API key")),
        "api_secret": Spec(True),
        "signature_secret": Spec(True),
        "application_id": Spec(False, _pattern(r"[A-Za-z0-9-]{1,64}", "a Vonage application id")),
    },
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "twilio": ("account_sid",),
    "telnyx": ("api_key",),
    "signalwire": ("space", "project_id", "api_token"),
    "vonage": ("api_key", "api_secret", "signature_secret"),
}
DEFAULT_BASE_URLS = {
    "twilio": "https://api.twilio.com",
    "telnyx": "https://api.telnyx.com/v2",
    "vonage": "https://rest.nexmo.com",
}
ROUTING_ONLY = ("vonage",)  # no adapter: numbers can only be imported onto these accounts
MAX_VALUE = 512


SPACE_LABEL = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def space_label(space: str) -> str | None:
    """The space's own label (``acme`` for ``acme`` or ``acme.signalwire.com``), or None if it
    names anything else (an account stored before spaces were checked this strictly)."""
    label = space.strip().lower().removesuffix(".signalwire.com")
    return label if SPACE_LABEL.fullmatch(label) else None


def default_base_url(carrier: str, public: dict[str, Any]) -> str | None:
    if carrier == "signalwire":
        label = space_label(str(public.get("space") or ""))
        return f"https://{label}.signalwire.com" if label else None
    return DEFAULT_BASE_URLS.get(carrier)


OPERATOR_ONLY_BASE_URL = (
    "the carrier's API base URL is the operator's setting, not the account's: the operator sets "
    "NUMBERPLANE_<CARRIER>_API_BASE_URL or adds a platform account with "
    "`numberplane carriers add-platform --api-base-url`; remove api_base_url from the request"
)


class CarrierAccountCreate(Model):
    carrier: CarrierName = Field(description="twilio, telnyx, signalwire, or vonage (routing only).")
    name: str = Field(min_length=1, max_length=200)
    credentials: dict[str, str] = Field(
        description="Everything the carrier gave you. twilio: account_sid + auth_token, or account_sid + "
        "api_key_sid + api_key_secret (auth_token is still needed to check Twilio's webhook signatures). "
        "telnyx: api_key + texml_application_id (or connection_id), public_key. signalwire: space + "
        "project_id + api_token, signing_key. vonage: api_key + api_secret + signature_secret."
    )
    # Not an org's to choose (it would point the server's requests anywhere): refused by name.
    api_base_url: SkipJsonSchema[Any] = Field(default=None, exclude=True)
    timeout_seconds: float | None = Field(default=None, gt=0, le=120)
    make_default: bool = Field(default=False, description="Make this the org's default account.")

    @field_validator("api_base_url", mode="before")
    @classmethod
    def _operator_only(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError(OPERATOR_ONLY_BASE_URL)
        return None

    @model_validator(mode="after")
    def _check(self) -> CarrierAccountCreate:
        specs = FIELDS[self.carrier]
        errors: list[str] = []
        for key, value in self.credentials.items():
            spec = specs.get(key)
            if spec is None:
                errors.append(f"credentials.{key}: not a {self.carrier} field (expected {', '.join(specs)})")
                continue
            if not value.strip():
                errors.append(f"credentials.{key}: must not be empty")
            elif len(value) > MAX_VALUE:
                errors.append(f"credentials.{key}: at most {MAX_VALUE} characters")
            elif spec.check is not None and (problem := spec.check(value.strip())):
                errors.append(f"credentials.{key}: {problem}")
        for key in REQUIRED[self.carrier]:
            if not self.credentials.get(key):
                errors.append(f"credentials.{key}: required for {self.carrier}")
        creds = self.credentials
        if self.carrier == "twilio":
            has_key = bool(creds.get("api_key_sid")) or bool(creds.get("api_key_secret"))
            if has_key and not (creds.get("api_key_sid") and creds.get("api_key_secret")):
                errors.append("credentials: give both api_key_sid and api_key_secret")
            if not creds.get("auth_token") and not has_key:
                errors.append("credentials.auth_token: required (or api_key_sid and api_key_secret)")
        if self.carrier == "telnyx" and not (creds.get("texml_application_id") or creds.get("connection_id")):
            errors.append(
                "credentials.texml_application_id: required (or connection_id): "
                "the Telnyx application numbers are pointed at"
            )
        if errors:
            raise ValueError("; ".join(errors))
        self.credentials = {k: v.strip() for k, v in creds.items()}
        return self

    def split(self) -> tuple[dict[str, Any], dict[str, str]]:
        """(public config, secrets) for storage."""
        specs = FIELDS[self.carrier]
        public: dict[str, Any] = {k: v for k, v in self.credentials.items() if not specs[k].secret}
        secrets = {k: v for k, v in self.credentials.items() if specs[k].secret}
        if self.api_base_url:
            public["api_base_url"] = self.api_base_url
        if self.timeout_seconds is not None:
            public["timeout_seconds"] = self.timeout_seconds
        return public, secrets

    def warnings(self) -> list[str]:
        creds = self.credentials
        out = []
        if self.carrier == "twilio" and not creds.get("auth_token"):
            out.append("no auth_token: Twilio's webhook signatures (X-Twilio-Signature) cannot be verified")
        if self.carrier == "telnyx" and not creds.get("public_key"):
            out.append("no public_key: Telnyx's webhook signatures (Ed25519) cannot be verified")
        if self.carrier == "telnyx" and not creds.get("texml_application_id"):
            out.append(
                "no texml_application_id: numbers are pointed at connection_id, whose voice URL "
                "Numberplane does not manage"
            )
        if self.carrier == "signalwire" and not creds.get("signing_key"):
            out.append("no signing_key: SignalWire's webhook signatures cannot be verified")
        return out


class PlatformAccountCreate(CarrierAccountCreate):
    """A platform-wide account, from the operator (``numberplane carriers add-platform``): the one
    place an account may carry its own API base URL (a regional edge, a proxy, a test double)."""

    api_base_url: HttpUrl | None = Field(  # type: ignore[assignment]
        default=None, description="The carrier's API base URL; defaults to the carrier's own."
    )

    @field_validator("api_base_url", mode="before")
    @classmethod
    def _operator_only(cls, value: Any) -> Any:
        return value.rstrip("/") if isinstance(value, str) else value


class CarrierAccountRead(BaseModel):
    id: str
    object: Literal["carrier_account"] = "carrier_account"
    carrier: str
    name: str
    scope: Literal["org", "platform"] = Field(
        description="org: this org's own credentials; platform: set by the operator, usable by every org."
    )
    config: dict[str, Any] = Field(description="Public settings; secrets are never returned.")
    secrets_set: list[str] = Field(description="Names of the secrets stored (encrypted) for this account.")
    routing_only: bool = Field(description="No adapter: numbers can only be imported onto this account.")
    is_default: bool
    status: str
    warnings: list[str] = Field(default_factory=list)
    created_at: dt.datetime
    updated_at: dt.datetime


class ReconcileDrift(BaseModel):
    kind: Literal["webhook_changed", "missing_at_carrier", "unknown_at_carrier", "repair_failed"]
    phone_number: str
    phone_number_id: str | None = None
    carrier_number_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    repaired: bool = False


class ReconcileReport(BaseModel):
    object: Literal["reconcile_report"] = "reconcile_report"
    account_id: str
    carrier: str
    started_at: dt.datetime
    finished_at: dt.datetime
    orders: dict[str, int] = Field(description="Pending purchase orders settled, by resulting status.")
    releases: dict[str, int] = Field(description="Numbers in `releasing` finished, by resulting status.")
    carrier_numbers: int = Field(description="Numbers the carrier reported holding on this account.")
    checked: int = Field(description="Our active numbers on this account compared with the carrier.")
    in_sync: int
    drift: list[ReconcileDrift]
    complete: bool = Field(description="False when a bound (max numbers per run) or an error cut it short.")
    errors: list[str] = Field(default_factory=list)
