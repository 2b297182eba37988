"""Where a carrier sends a number's calls and messages: Numberplane's routing endpoints.

Every number Numberplane holds points at ``{public_url}/voice/{carrier}`` (calls),
``{public_url}/voice/{carrier}/fallback`` (the carrier's retry when the first answer fails),
``{public_url}/voice/{carrier}/status`` (call status callbacks) and, when SMS is enabled,
``{public_url}/sms/{carrier}``. The buy, import and update flows push this to the carrier, and
reconcile compares what the carrier holds with it.
"""

from __future__ import annotations

from numberplane.carriers.base import NumberConfig

# Calls to sandbox numbers arrive in Twilio's format (see routing), so they use Twilio's endpoints.
WIRE_FORMAT = {"sandbox": "twilio"}


def _base(public_url: str) -> str:
    base = public_url.strip().rstrip("/")
    if not base:
        raise ValueError("public_url is empty: set NUMBERPLANE_PUBLIC_URL")
    return base


def voice_url_for(*, carrier: str, public_url: str) -> str:
    return f"{_base(public_url)}/voice/{WIRE_FORMAT.get(carrier, carrier)}"


def number_config_for(*, carrier: str, public_url: str, sms: bool, friendly_name: str | None) -> NumberConfig:
    """The carrier-side settings Numberplane owns for a number on ``carrier``."""
    base = _base(public_url)
    wire = WIRE_FORMAT.get(carrier, carrier)
    return NumberConfig(
        voice_url=f"{base}/voice/{wire}",
        voice_fallback_url=f"{base}/voice/{wire}/fallback",
        status_callback_url=f"{base}/voice/{wire}/status",
        sms_url=f"{base}/sms/{wire}" if sms else None,
        friendly_name=friendly_name,
    )
