"""Which carrier account sent a request to ``/voice/*``, or why it is refused.

Accounts are tried in this order, and the first whose key verifies the request is the sender:

1. the account that holds the called number (``To``; the caller looks its snapshot up once and
   hands it in, and routes the call on the same snapshot): a genuine request routes however many
   other accounts, in any org, claim the identifier it carries (account-SID squatting);
2. the accounts that claim that identifier (``AccountSid``, project, connection, ``api_key``), at
   most ``AccountDirectory``'s bound: they answer for numbers that are not ours (a verified
   "not in service") and for requests whose ``To`` names no number.

A Vonage token is accepted once (``ReplayGuard``). Every refusal is counted in ``/metrics`` and
logged with the carrier, the account if known, and the reason, at most ``RefusalLog.per_window``
lines per carrier and reason a minute (a flood cannot fill the log; the rest are summed up).
Secrets, signatures and tokens are never logged.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from numberplane.routing import metrics
from numberplane.routing.snapshot import RouteSnapshot
from numberplane.routing.verify import (
    TIMESTAMP_TOLERANCE_S,
    AccountDirectory,
    AccountKey,
    MultiParams,
    VonageClaims,
    signalwire_valid,
    telnyx_valid,
    twilio_valid,
    vonage_check,
    vonage_unverified_api_key,
)
from numberplane.routing.wire import Incoming

log = logging.getLogger("numberplane.routing.verify")

MAX_LOGGED_VALUE = 80


class Verdict(NamedTuple):
    """The verified account, or (``account`` None) why not: a fixed ``code`` and the detail.
    (A NamedTuple: one is made for every carrier request, cheaper than a frozen dataclass.)"""

    account: AccountKey | None
    code: str = ""
    reason: str = ""
    account_id: str | None = None  # the account that should have verified it, when known
    claimed: str | None = None  # the identifier the request named (AccountSid, api_key...)

    @classmethod
    def refused(
        cls, code: str, reason: str, *, account_id: str | None = None, claimed: str | None = None
    ) -> Verdict:
        return cls(None, code, reason, account_id, claimed)


def signed_url(incoming: Incoming) -> str:
    """The URL as configured at the carrier: public URL + path (+ query, byte for byte)."""
    base = incoming.router.settings.public_url.rstrip("/")
    path = incoming.raw_path or incoming.path
    return f"{base}{path}?{incoming.query}" if incoming.query else f"{base}{path}"


# -- refusals, in the log without flooding it ------------------------------------------------------


def _printable(value: str | None) -> str:
    """A request-supplied value as it may appear in a log line: short, one line, no controls."""
    if not value:
        return "-"
    text = value[:MAX_LOGGED_VALUE].encode("unicode_escape").decode("ascii")
    return text + ("…" if len(value) > MAX_LOGGED_VALUE else "")


class RefusalLog:
    """Counts every refusal; logs the first ``per_window`` per (carrier, code) each ``window``
    seconds, then one line saying how many more there were. Keys are fixed names, so it is bounded."""

    def __init__(
        self, *, per_window: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_window = per_window
        self.window = window
        self.clock = clock
        self._windows: dict[tuple[str, str], list[float]] = {}  # key -> [start, logged, suppressed]

    def reset(self) -> None:
        self._windows.clear()

    def note(self, carrier: str, verdict: Verdict, path: str = "") -> None:
        metrics.SIGNATURE_FAILURES.labels(carrier).inc()
        key = (carrier, verdict.code or "refused")
        now = self.clock()
        state = self._windows.get(key)
        if state is None or now - state[0] >= self.window:
            if state is not None and state[2]:
                log.warning(
                    "refused %d more %s requests (%s) in the last %.0f s without logging each",
                    state[2],
                    carrier,
                    key[1],
                    now - state[0],
                )
            state = [now, 0, 0]
            self._windows[key] = state
        if state[1] >= self.per_window:
            state[2] += 1
            return
        state[1] += 1
        log.warning(
            "refused a %s request to %s: %s [%s] account=%s claimed=%s",
            carrier,
            path or "-",
            verdict.reason,
            key[1],
            verdict.account_id or "-",
            _printable(verdict.claimed),
        )


REFUSALS = RefusalLog()


def refused(carrier: str, verdict: Verdict, path: str = "") -> None:
    """Count and (rate-limited) log one refused carrier request."""
    REFUSALS.note(carrier, verdict, path)


# -- Vonage replays ------------------------------------------------------------------------------


class ReplayGuard:
    """Vonage tokens already accepted by this process, until they would expire anyway.

    Per process: behind several server processes a captured token could be replayed once to
    each other process within its 5-minute window (a shared table would close that, at the
    price of a database write on every Vonage call). Only verified tokens enter, so only Vonage
    can fill it; at ``max_entries`` the oldest is dropped.
    """

    def __init__(self, *, max_entries: int = 200_000, clock: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def first_use(self, account_id: str, claims: VonageClaims) -> bool:
        now = self.clock()
        seen = self._seen
        # Entries arrive roughly in expiry order: drop the expired ones at the front.
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] >= now:
                break
            del seen[oldest]
        key = (account_id, claims.jti)
        expires = seen.get(key)
        if expires is not None and expires >= now:
            return False
        if len(seen) >= self.max_entries:
            del seen[next(iter(seen))]
        seen[key] = max(claims.expires, now)
        return True


# -- the verification ------------------------------------------------------------------------------


class CarrierAuth:
    """Per process: the account directory and the replay guard. Each check takes the called
    number's snapshot (``route``: None when the number is not ours or the request names none)."""

    def __init__(self, accounts: AccountDirectory) -> None:
        self.accounts = accounts
        self.replays = ReplayGuard()

    async def _owner(self, route: RouteSnapshot | None, carriers: Sequence[str]) -> AccountKey | None:
        """The account that holds the called number, if it is one of ``carriers``'."""
        if route is None or not route.carrier_account_id:
            return None
        account = await self.accounts.get(route.carrier_account_id)
        return account if account is not None and account.carrier in carriers else None

    async def _candidates(
        self, route: RouteSnapshot | None, carriers: Sequence[str], fields: Sequence[str], value: str | None
    ) -> tuple[AccountKey | None, list[AccountKey]]:
        owner = await self._owner(route, carriers)
        out = [owner] if owner is not None else []
        if value:
            out += _new(out, await self.accounts.find(carriers, fields, value))
        return owner, out

    async def _first_valid(
        self,
        route: RouteSnapshot | None,
        carriers: Sequence[str],
        fields: Sequence[str],
        value: str | None,
        valid: Callable[[AccountKey], bool],
    ) -> tuple[AccountKey | None, AccountKey | None, list[AccountKey]]:
        """The first account, in the module's order, whose key verifies the request: (it or None,
        the called number's account, every account tried). The called number's account is tried
        alone first: a genuine request verifies with it, so the accounts claiming ``value`` are
        looked up only when it does not."""
        owner = await self._owner(route, carriers)
        if owner is not None and valid(owner):
            return owner, owner, [owner]
        tried = [owner] if owner is not None else []
        if value:
            for account in _new(tried, await self.accounts.find(carriers, fields, value)):
                tried.append(account)
                if valid(account):
                    return account, owner, tried
        return None, owner, tried

    def form(
        self, incoming: Incoming, carrier: str, params: MultiParams, route: RouteSnapshot | None
    ) -> Awaitable[Verdict]:
        """Twilio (and the sandbox), SignalWire, Telnyx: the carrier's check, to await."""
        if carrier == "twilio":
            return self._twilio(incoming, params, route)
        if carrier == "signalwire":
            return self._signalwire(incoming, params, route)
        return self._telnyx(incoming, params, route)

    async def _twilio(self, incoming: Incoming, params: MultiParams, route: RouteSnapshot | None) -> Verdict:
        signature = incoming.headers.get("x-twilio-signature")
        sid = params.get("AccountSid")
        if not signature:
            return Verdict.refused("unsigned", "no X-Twilio-Signature header", claimed=sid)
        settings_header = incoming.headers.get("x-twilio-webhooks-signature-settings", "")
        url = signed_url(incoming)
        verified, owner, candidates = await self._first_valid(
            route,
            ("twilio", "sandbox"),
            ("account_sid",),
            sid,
            lambda account: twilio_valid(
                account.secret("auth_token") or "",
                url,
                params,
                signature,
                settings_header=settings_header,
                keyed=account.keyed_hmac,
            ),
        )
        if verified is not None:
            return Verdict(verified)
        if not candidates:
            return _unknown(sid, "AccountSid")
        return _mismatch("X-Twilio-Signature", candidates, owner, sid, "auth_token")

    async def _signalwire(
        self, incoming: Incoming, params: MultiParams, route: RouteSnapshot | None
    ) -> Verdict:
        headers = incoming.headers
        signature = headers.get("x-signalwire-signature") or headers.get("x-twilio-signature")
        sha256_signature = headers.get("x-signalwire-sha256-signature")
        project = params.get("AccountSid") or params.get("ProjectId")
        if not (signature or sha256_signature):
            return Verdict.refused("unsigned", "no X-SignalWire-Signature header", claimed=project)
        url = signed_url(incoming)
        verified, owner, candidates = await self._first_valid(
            route,
            ("signalwire",),
            ("project_id", "account_sid"),
            project,
            lambda account: signalwire_valid(
                account.secret("signing_key") or "",
                url,
                params,
                incoming.body,
                signature=signature,
                sha256_signature=sha256_signature,
            ),
        )
        if verified is not None:
            return Verdict(verified)
        if not candidates:
            return _unknown(project, "project")
        return _mismatch("X-SignalWire-Signature", candidates, owner, project, "signing_key")

    async def _telnyx(self, incoming: Incoming, params: MultiParams, route: RouteSnapshot | None) -> Verdict:
        signature = incoming.headers.get("telnyx-signature-ed25519")
        timestamp = incoming.headers.get("telnyx-timestamp")
        connection = params.get("ConnectionId")
        if not signature or not timestamp:
            return Verdict.refused("unsigned", "no telnyx-signature-ed25519 header", claimed=connection)
        if not _fresh(timestamp):
            return Verdict.refused(
                "stale", f"telnyx-timestamp more than {TIMESTAMP_TOLERANCE_S} s from now", claimed=connection
            )
        owner, candidates = await self._candidates(route, ("telnyx",), (), None)
        sid = params.get("AccountSid")
        for field_names, value in (
            (("account_sid", "user_id"), sid),
            (("connection_id", "texml_application_id"), connection),
        ):
            if value:
                candidates += _new(candidates, await self.accounts.find(("telnyx",), field_names, value))
        if not candidates:
            candidates = list(await self.accounts.all_of("telnyx"))
        if not candidates:
            return _unknown(connection or sid, "connection")
        for account in candidates:
            public_key = account.config.get("public_key") or account.secret("public_key") or ""
            if telnyx_valid(str(public_key), incoming.body, signature=signature, timestamp=timestamp):
                return Verdict(account)
        return _mismatch("telnyx-signature-ed25519", candidates, owner, connection or sid, "public_key")

    async def vonage(self, incoming: Incoming, route: RouteSnapshot | None) -> Verdict:
        scheme, _, token = incoming.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return Verdict.refused("unsigned", "no Authorization: Bearer token")
        api_key = vonage_unverified_api_key(token)
        owner, candidates = await self._candidates(route, ("vonage",), ("api_key",), api_key)
        if not candidates:
            return _unknown(api_key, "api_key")
        query = parse_qsl(incoming.query, keep_blank_values=True)
        first_reason = ""
        for account in candidates:
            secret = account.secret("signature_secret") or ""
            result = vonage_check(secret, token, raw_body=incoming.body, query=query, method=incoming.method)
            if isinstance(result, VonageClaims):
                if not self.replays.first_use(account.id, result):
                    return Verdict.refused(
                        "replay", "token already used (replayed)", account_id=account.id, claimed=api_key
                    )
                return Verdict(account)
            first_reason = first_reason or result
        code = "bad_signature" if first_reason == "signature does not match" else "bad_token"
        return Verdict.refused(
            code,
            f"Vonage token refused: {first_reason} ({len(candidates)} account(s) tried)",
            account_id=(owner or candidates[0]).id,
            claimed=api_key,
        )


def _new(have: Sequence[AccountKey], found: Sequence[AccountKey]) -> list[AccountKey]:
    ids = {a.id for a in have}
    return [a for a in found if a.id not in ids]


def _fresh(timestamp: str) -> bool:
    try:
        return abs(time.time() - int(timestamp)) <= TIMESTAMP_TOLERANCE_S
    except ValueError:
        return False


def _unknown(value: str | None, name: str) -> Verdict:
    if not value:
        return Verdict.refused("unknown_account", f"no {name} given and the called number is not ours")
    return Verdict.refused("unknown_account", f"no account registered for this {name}", claimed=value)


def _mismatch(
    header: str, candidates: list[AccountKey], owner: AccountKey | None, claimed: Any, key: str
) -> Verdict:
    who = "the called number's account" if owner is not None else "the account"
    extra = f" nor {len(candidates) - 1} other(s)" if len(candidates) > 1 else ""
    return Verdict.refused(
        "bad_signature",
        f"{header} does not verify with {who}'s {key}{extra}",
        account_id=(owner or candidates[0]).id,
        claimed=claimed,
    )
