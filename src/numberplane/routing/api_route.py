"""``GET /v1/route``'s answer, for the FastAPI view and for the fast path alike.

SIP platforms (LiveKit, FreeSWITCH, jambonz, Asterisk) ask this on every call, so it is served
like the carrier endpoints: ``routing.fastpath`` answers the requests it can take whole — a
well-formed query and a key the key cache (``tenancy.keycache``) already knows — with
``lean``; everything else (a missing or malformed parameter, an unknown or wrong key, any
error) goes on to the FastAPI view (``routing.views.route_call``), which answers in the API's
own shapes. Both call ``answer``, so their bodies cannot differ.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from numberplane.routing import recording
from numberplane.routing.decide import CallInfo
from numberplane.routing.handlers import Outgoing, parse_form
from numberplane.routing.render import FORMAT_CARRIER, FORMATS, render
from numberplane.routing.service import record, router_of
from numberplane.tenancy.auth import credentials_in

PATH = "/v1/route"
# The query parameters and their limits, as the view declares them (``routing.views``).
MAX_LENGTH = {"to": 256, "from": 256, "call_id": 128, "format": 8, "webhook": 8}
# The spellings of a boolean the lean path takes; any other goes to the view (pydantic decides).
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


async def answer(
    app: Any,
    org_id: str,
    *,
    to: str,
    caller: str | None,
    call_id: str | None,
    fmt: str,
    webhook: bool,
) -> tuple[bytes, str, str]:
    """(body, media type, outcome) of the decision for this call among ``org_id``'s numbers.
    A call with a ``call_id`` is a real call of a SIP platform: it gets a call record (written
    behind the answer)."""
    started = time.perf_counter()
    r = router_of(app)
    call = CallInfo.parse(to=to, caller=caller, call_id=call_id, carrier=FORMAT_CARRIER[fmt])
    routed = await r.route_full(call, org_id=org_id, ask_webhook=webhook)
    decision = routed.decision
    body, media_type = render(decision, fmt)
    record(decision, "api", started)
    if call_id:
        recording.decided(r, routed, carrier="api", org_id=org_id, account_id=None, started=started)
    return body, media_type, decision.outcome


def _arguments(query: str) -> dict[str, str] | None:
    """The parameters, if the view would accept them exactly as given; None otherwise. Parsed as
    ``parse_qsl`` parses them, by the carrier bodies' faster parser (``handlers.parse_form``)."""
    args: dict[str, str] = {}
    for name, value in parse_form(query):
        if name == "explain":
            return None  # an explanation (its trace, no record) is the view's
        limit = MAX_LENGTH.get(name)
        if limit is None:
            continue  # the view ignores parameters it does not declare
        if name in args or not value or len(value) > limit:
            return None
        args[name] = value
    if "to" not in args or args.get("format", "json") not in FORMATS:
        return None
    if "webhook" in args and args["webhook"] not in _BOOLEANS:
        return None
    return args


Header = tuple[bytes, bytes]
CACHE_CONTROL: Header = (b"cache-control", b"no-store")


async def lean(app: Any, query: str, headers: Mapping[str, str]) -> tuple[Outgoing, list[Header]] | None:
    """The answer the view would give (and its extra headers), or None when the view should give it."""
    keys = getattr(app.state, "keys", None)
    creds = credentials_in(headers)
    if keys is None or creds is None:
        return None
    args = _arguments(query)
    if args is None:
        return None
    _, principal = keys.check(*creds)
    if principal is None:  # not in the cache, or refused: the view looks it up or says why
        return None
    fmt = args.get("format", "json")
    body, media_type, outcome = await answer(
        app,
        principal.org_id,
        to=args["to"],
        caller=args.get("from"),
        call_id=args.get("call_id"),
        fmt=fmt,
        webhook=_BOOLEANS[args.get("webhook", "true")],
    )
    return Outgoing(200, body, media_type), [(b"x-numberplane-outcome", outcome.encode()), CACHE_CONTROL]
