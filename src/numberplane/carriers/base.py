"""The one interface every carrier adapter implements, and the errors they raise.

Adapters translate; they hold no business rules. The numbers service decides when to call
them and what a failure means for the order (see numbers.service).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SearchQuery:
    country: str = "US"
    number_type: str = "local"  # local | toll_free | mobile
    area_code: str | None = None
    contains: str | None = None
    limit: int = 20


@dataclass(frozen=True)
class AvailableNumber:
    phone_number: str  # E.164
    country: str
    number_type: str
    area_code: str | None = None
    locality: str | None = None
    region: str | None = None
    capabilities: dict[str, bool] = field(
        default_factory=lambda: {"voice": True, "sms": True, "mms": False, "fax": False}
    )
    monthly_cost: str | None = None
    currency: str | None = None


@dataclass(frozen=True)
class NumberConfig:
    """What Numberplane sets on the carrier's side of a number: its webhooks point at us."""

    voice_url: str | None = None
    voice_fallback_url: str | None = None
    status_callback_url: str | None = None
    sms_url: str | None = None
    friendly_name: str | None = None


@dataclass(frozen=True)
class CarrierNumber:
    """A number as the carrier holds it."""

    carrier_number_id: str
    phone_number: str  # E.164
    voice_url: str | None = None
    sms_url: str | None = None
    reference: str | None = None
    status: str = "active"  # active | pending (order not complete yet) | failed
    capabilities: dict[str, bool] | None = None


class CarrierError(Exception):
    """Base of every adapter error. ``code`` is machine-readable; ``carrier`` names who said it."""

    code = "carrier_error"
    http_status = 502
    retriable = False

    def __init__(self, message: str, *, carrier: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.carrier = carrier
        self.detail = detail


class CarrierAuthError(CarrierError):
    code = "carrier_auth_failed"
    http_status = 424


class NoNumbersAvailable(CarrierError):
    code = "no_numbers_available"
    http_status = 409


class NumberUnavailable(CarrierError):
    """The exact number asked for can no longer be bought (taken, or never offered)."""

    code = "number_unavailable"
    http_status = 409


class CarrierNotFound(CarrierError):
    code = "carrier_number_not_found"
    http_status = 404


class CarrierRejected(CarrierError):
    """A definite 4xx refusal: nothing happened at the carrier."""

    code = "carrier_rejected"
    http_status = 422


class CarrierUnavailable(CarrierError):
    """Timeout, connection failure or 5xx. For a paid call the outcome is unknown, so never retry blindly."""

    code = "carrier_unavailable"
    http_status = 503
    retriable = True

    def __init__(
        self, message: str, *, carrier: str, detail: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message, carrier=carrier, detail=detail)
        self.retry_after = retry_after


@runtime_checkable
class CarrierAdapter(Protocol):
    """Search, buy, configure, release and list, at one carrier account.

    Every method makes bounded outgoing calls (each with a timeout) and raises CarrierError
    subclasses, never raw HTTP errors.
    """

    carrier: str

    async def verify_credentials(self) -> None:
        """One cheap authenticated call; raises CarrierAuthError naming the carrier."""

    async def search(self, query: SearchQuery) -> list[AvailableNumber]: ...

    async def buy(self, *, phone_number: str, reference: str, config: NumberConfig) -> CarrierNumber:
        """Buy exactly ``phone_number``, tagging it with ``reference`` where the carrier allows.

        May return status "pending" for carriers whose orders complete asynchronously.
        Raises NumberUnavailable, CarrierRejected (definite: nothing bought) or
        CarrierUnavailable (ambiguous: ask ``find`` before trying again).
        """
        ...

    async def find(self, *, phone_number: str, reference: str | None = None) -> CarrierNumber | None:
        """The number if this account holds it (or an order for it is in flight), else None."""
        ...

    async def configure(self, *, carrier_number_id: str, config: NumberConfig) -> CarrierNumber: ...

    async def release(self, *, carrier_number_id: str) -> None:
        """Release; a number the carrier no longer has counts as released (idempotent)."""
        ...

    def list_owned(self) -> AsyncIterator[CarrierNumber]:
        """Every number the account holds, page by page (bounded by the carrier's paging)."""
        ...
