"""The number's inbound webhook, with Retell's ``call_inbound`` semantics.

Request (POST, JSON)::

    {"event": "call_inbound", "event_timestamp": <ms>,
     "call_inbound": {"agent_id": ..., "agent_version": ..., "from_number": "+1...",
                      "to_number": "+1...", "call_id": "...", "phone_number_id": "..."}}

``agent_id``/``agent_version`` are the agent the number would pick for this call (if any).

Answer (2xx, JSON; every field optional)::

    {"call_inbound": {"override_agent_id": ..., "override_agent_version": 3,
                      "dynamic_variables": {"name": "Ada"}, "metadata": {...},
                      "reject": false}}

``reject: true`` (or ``"action": "reject"``) rejects the call. An empty 2xx means "no change".

Budget: ``inbound_webhook_timeout_ms`` (default 10 s) for all attempts together, split over
``inbound_webhook_attempts`` (default 3): each attempt gets the time left divided by the
attempts left, so a fast failure leaves more time for the next try. A non-2xx, a timeout, a
connection error or an unreadable body is a failed attempt; when all fail, routing carries on
with the number's own agents. The URL goes through ``net.customer_request`` (no loopback or
private addresses unless allowed, redirects checked hop by hop).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from numberplane import __version__
from numberplane.kernel.net import BlockedURL, customer_request
from numberplane.routing.decide import CallInfo, WebhookResult, pick_agent
from numberplane.routing.snapshot import AgentTarget, RouteSnapshot

log = logging.getLogger("numberplane.routing.webhook")

MAX_RESPONSE_BYTES = 64 * 1024
MAX_DYNAMIC_VARIABLES = 100
RETRY_PAUSE_S = 0.05

AgentLoader = Callable[[str, str, int | None], Awaitable[AgentTarget | None]]


class _Unreadable(ValueError):
    pass


def request_body(route: RouteSnapshot, call: CallInfo) -> dict[str, Any]:
    default = pick_agent(route.agents, call.call_id, route.number_id)
    inbound: dict[str, Any] = {
        "from_number": call.caller or call.raw_caller,
        "to_number": call.to,
        "call_id": call.call_id,
        "phone_number_id": route.number_id,
    }
    if default is not None:
        inbound["agent_id"] = default.agent_id
        if default.version is not None:
            inbound["agent_version"] = default.version
    return {"event": "call_inbound", "event_timestamp": int(time.time() * 1000), "call_inbound": inbound}


def parse_answer(response: httpx.Response) -> dict[str, Any]:
    """The ``call_inbound`` object of a 2xx answer ({} for an empty body). Raises _Unreadable."""
    content = response.content
    if len(content) > MAX_RESPONSE_BYTES:
        raise _Unreadable("response too large")
    if not content.strip():
        return {}
    try:
        body = json.loads(content)
    except ValueError as exc:
        raise _Unreadable("response is not JSON") from exc
    if not isinstance(body, dict):
        raise _Unreadable("response is not a JSON object")
    inner = body.get("call_inbound", body)
    if not isinstance(inner, dict):
        raise _Unreadable("call_inbound is not an object")
    return inner


def _dynamic(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    out: dict[str, str] = {}
    for key, item in list(value.items())[:MAX_DYNAMIC_VARIABLES]:
        if item is None:
            continue
        out[str(key)[:128]] = item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))
    return out


def _version(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 1:
        return value
    if isinstance(value, str) and value.isdigit() and int(value) >= 1:
        return int(value)
    return None


async def interpret(
    answer: dict[str, Any], route: RouteSnapshot, call: CallInfo, load_agent: AgentLoader, attempts: int
) -> WebhookResult:
    """Turn an answer into a WebhookResult, resolving any agent override within the number's org."""
    if answer.get("reject") is True or answer.get("action") == "reject":
        return WebhookResult(status="rejected", attempts=attempts)
    override_id = answer.get("override_agent_id")
    override_version = _version(answer.get("override_agent_version"))
    agent: AgentTarget | None = None
    error: str | None = None
    if isinstance(override_id, str) and override_id:
        bound = [a for a in route.agents if a.agent_id == override_id]
        if override_version is None and bound:
            agent = bound[0]
        else:
            agent = await load_agent(route.org_id, override_id, override_version)
        if agent is None:
            error = "override_agent_not_found"
    elif override_version is not None:
        default = pick_agent(route.agents, call.call_id, route.number_id)
        if default is not None:
            agent = await load_agent(route.org_id, default.agent_id, override_version)
            if agent is None:
                error = "override_version_not_found"
    metadata = answer.get("metadata")
    return WebhookResult(
        status="answered",
        agent=agent,
        dynamic_variables=_dynamic(answer.get("dynamic_variables")),
        metadata=metadata if isinstance(metadata, dict) else {},
        attempts=attempts,
        error=error,
    )


async def ask(
    client: httpx.AsyncClient,
    route: RouteSnapshot,
    call: CallInfo,
    *,
    allow_private: bool,
    load_agent: AgentLoader,
) -> WebhookResult:
    """Ask the number's inbound webhook about ``call`` within its budget. Never raises."""
    url = route.inbound_webhook_url
    if not url:
        return WebhookResult.failed("no_webhook")
    budget = max(route.inbound_webhook_timeout_ms, 1) / 1000.0
    attempts = max(route.inbound_webhook_attempts, 1)
    deadline = time.monotonic() + budget
    body = json.dumps(request_body(route, call), separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"Numberplane/{__version__}",
        "X-Numberplane-Call-Id": call.call_id,
    }
    last_error = "timeout"
    made = 0
    for attempt in range(attempts):
        left = deadline - time.monotonic()
        if left <= 0.01:
            break
        timeout = left / (attempts - attempt)
        made += 1
        try:
            response = await asyncio.wait_for(
                customer_request(
                    client,
                    "POST",
                    url,
                    allow_private=allow_private,
                    timeout=timeout,
                    content=body,
                    headers={**headers, "X-Numberplane-Attempt": str(attempt + 1)},
                ),
                timeout=timeout + 0.05,
            )
        except BlockedURL:
            log.warning("inbound webhook for %s blocked: private or invalid address", route.e164)
            return WebhookResult.failed("blocked_url", made)
        except (httpx.TimeoutException, TimeoutError):
            last_error = "timeout"
            continue
        except httpx.HTTPError:
            last_error = "connection_error"
        else:
            if 200 <= response.status_code < 300:
                try:
                    answer = parse_answer(response)
                except _Unreadable:
                    return WebhookResult.failed("bad_response", made)
                return await interpret(answer, route, call, load_agent, made)
            last_error = f"http_{response.status_code}"
        pause = min(RETRY_PAUSE_S * (attempt + 1), max(deadline - time.monotonic(), 0) / 4)
        if pause > 0:
            await asyncio.sleep(pause)
    return WebhookResult.failed(last_error, made)
