"""Is this request really from the carrier? Each carrier's own scheme, with the owning account's key.

- Twilio (and the sandbox, which signs the same way): ``X-Twilio-Signature`` checked with
  twilio's ``RequestValidator`` and the auth token of the account named by ``AccountSid``.
- SignalWire: ``X-SignalWire-Signature`` with the project's signing key, either the cXML/form
  scheme (Twilio's algorithm) or the raw-body scheme (hex HMAC-SHA1 of URL + body; SHA-256 in
  ``X-SignalWire-SHA256-Signature``).
- Telnyx: Ed25519 over ``f"{telnyx-timestamp}|{raw body}"``, 300 s tolerance, public key in the
  account's ``config["public_key"]``.
- Vonage: ``Authorization: Bearer <JWT>`` signed HS256 with the account's signature secret; the
  ``api_key`` claim names the account; ``payload_hash`` must match, and is required when the
  request has a body; ``iat`` must be fresh; a token is accepted once (``routing.carrier_auth``).

The URL checked is the one configured at the carrier: ``settings.public_url`` + path + query,
never what a proxy in front of us makes the request look like.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from urllib.parse import urlsplit, urlunsplit

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import or_, select
from twilio.request_validator import RequestValidator, get_signature_algorithm

from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.registry import credentials_of
from numberplane.kernel.db import Database

log = logging.getLogger("numberplane.routing.verify")

TIMESTAMP_TOLERANCE_S = 300
ACCOUNT_TTL_S = 60.0
_DEAD_STATUSES = ("deleted", "disabled")


class Mac(Protocol):
    """A keyed HMAC, as ``hmac.HMAC`` and OpenSSL's own (``_keyed``) both are."""

    def copy(self) -> Mac: ...
    def update(self, msg: bytes) -> None: ...
    def digest(self) -> bytes: ...


def _openssl_hmac_new() -> Callable[..., Mac] | None:
    """OpenSSL's HMAC constructor, which ``hmac.new`` wraps (CPython's ``_hashlib``), if here."""
    try:
        import _hashlib
    except ImportError:  # pragma: no cover - a Python built without OpenSSL's hashlib
        return None
    return cast(Callable[..., Mac], _hashlib.hmac_new)


_openssl_hmac = _openssl_hmac_new()


def _keyed(key: bytes, digest: str) -> Mac:
    """An HMAC keyed with ``key``: OpenSSL's HMAC object itself where this Python's hashlib has
    it (what ``hmac.new`` wraps in Python: its ``copy``, ``update`` and ``digest`` are a Python
    frame each, ~0.5 us of a signature check); ``hmac.new``'s otherwise."""
    if _openssl_hmac is not None:
        try:
            return _openssl_hmac(key, digestmod=digest)
        except (TypeError, ValueError):  # a digest OpenSSL lacks here: hmac.new says so as usual
            pass
    return hmac.new(key, digestmod=digest)


@dataclass(frozen=True, slots=True)
class AccountKey:
    """A carrier account as verification needs it: identifiers and decrypted secrets."""

    id: str
    org_id: str | None
    carrier: str
    config: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Any] = field(default_factory=dict)
    _macs: dict[tuple[str, str], Mac] = field(default_factory=dict, repr=False, compare=False)

    def secret(self, name: str) -> str | None:
        value = self.secrets.get(name)
        return value if isinstance(value, str) and value else None

    def keyed_hmac(self, key: str, digest: str) -> Mac:
        """An HMAC keyed with ``key`` (one of this account's secrets), nothing hashed yet, to copy
        for each message: keying one costs more than hashing a carrier's message (a signature
        1.66 -> 1.1 us). Kept with this AccountKey, so no longer than the directory keeps it."""
        mac = self._macs.get((key, digest))
        if mac is None:
            if len(self._macs) >= 8:  # an account has a few secrets and two digests
                self._macs.clear()
            mac = self._macs[key, digest] = _keyed(key.encode(), digest)
        return mac


class MultiParams:
    """Form parameters in order, with the ``getall`` twilio's validator looks for.

    Built for the usual carrier body, where no name repeats: the first value of each name is one
    C-level ``dict`` (built from the end where a name repeats, so the first value wins); the per-name lists
    ``getall`` and a repeated name need are built only when asked for."""

    __slots__ = ("_canonical", "_first", "_items", "_lists", "get")

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self._items = list(items)
        first = dict(self._items)  # the last value of each name...
        if len(first) != len(self._items):  # ...which is the first where no name repeats
            first = dict(reversed(self._items))
        self._first = first
        # ``get(name, default=None)``: the first value of ``name``. The dict's own method, not one
        # calling it: a carrier request reads ~10 parameters, each a Python frame fewer.
        self.get: Callable[..., str | None] = first.get
        self._lists: dict[str, list[str]] | None = None
        self._canonical: str | None = None

    def _by_name(self) -> dict[str, list[str]]:
        lists = self._lists
        if lists is None:
            lists = self._lists = {}
            for key, value in self._items:
                values = lists.get(key)
                if values is None:
                    lists[key] = [value]
                else:
                    values.append(value)
        return lists

    def canonical(self) -> str:
        """What Twilio's signature appends to the URL: each name (sorted) followed by each of its
        distinct values (sorted). Computed once per request, however many accounts are tried."""
        if self._canonical is None:
            if len(self._first) == len(self._items):  # the usual body: no name repeats
                self._canonical = _canonical_unique(self._items)
            else:
                self._canonical = _canonical(self._by_name())
        return self._canonical

    def __iter__(self) -> Any:
        return iter(self._by_name())

    def __len__(self) -> int:
        return len(self._first)

    def getall(self, name: str) -> list[str]:
        return self._by_name().get(name, [])

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


class AccountDirectory:
    """Carrier accounts by the identifier a carrier puts in its requests, cached briefly.

    Entries live ``ttl`` seconds and are dropped at once when a writer in any process calls
    ``kernel.changes.accounts_changed``.
    """

    def __init__(self, db: Database, *, ttl: float = ACCOUNT_TTL_S, max_entries: int = 10_000) -> None:
        self.db = db
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: OrderedDict[tuple[Any, ...], tuple[float, tuple[AccountKey, ...]]] = OrderedDict()

    def invalidate(self, _ids: Iterable[str] | None = None) -> None:
        self._cache.clear()

    async def find(
        self, carriers: Sequence[str], fields: Sequence[str], value: str
    ) -> tuple[AccountKey, ...]:
        """Accounts of ``carriers`` whose ``config[field]`` equals ``value`` for one of ``fields``."""
        if not value or len(value) > 200:
            return ()
        key = (tuple(carriers), tuple(fields), value)
        found = self._fresh(key)
        if found is None:
            found = await self._cached(key, lambda: self._query(carriers, fields, value))
        return found

    async def all_of(self, carrier: str, limit: int = 50) -> tuple[AccountKey, ...]:
        return await self._cached(("*", carrier), lambda: self._query([carrier], (), None, limit=limit))

    async def get(self, account_id: str) -> AccountKey | None:
        """One account by id (the account that holds a called number), whatever its carrier."""
        if not account_id or len(account_id) > 64:
            return None
        key = ("id", account_id)
        found = self._fresh(key)  # every carrier request asks: a hit needs no closure and no await
        if found is None:
            found = await self._cached(key, lambda: self._query((), (), None, ids=[account_id]))
        return found[0] if found else None

    def _fresh(self, key: tuple[Any, ...]) -> tuple[AccountKey, ...] | None:
        """``key``'s cached value while it lives; None when it has none or it expired."""
        hit = self._cache.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    async def _cached(self, key: tuple[Any, ...], load: Any) -> tuple[AccountKey, ...]:
        found = self._fresh(key)
        if found is not None:
            return found
        now = time.monotonic()
        value: tuple[AccountKey, ...] = await load()
        if len(self._cache) >= self.max_entries:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (now + self.ttl, value)
        return value

    async def _query(
        self,
        carriers: Sequence[str],
        fields: Sequence[str],
        value: str | None,
        limit: int = 20,
        ids: Sequence[str] = (),
    ) -> tuple[AccountKey, ...]:
        stmt = select(CarrierAccount).where(CarrierAccount.status.not_in(_DEAD_STATUSES))
        if carriers:
            stmt = stmt.where(CarrierAccount.carrier.in_(list(carriers)))
        if ids:
            stmt = stmt.where(CarrierAccount.id.in_(list(ids)))
        if fields:
            stmt = stmt.where(or_(*[CarrierAccount.config[f].as_string() == value for f in fields]))
        stmt = stmt.order_by(CarrierAccount.id).limit(limit)
        async with self.db.session() as session:
            rows = list(await session.scalars(stmt))
        out: list[AccountKey] = []
        for row in rows:
            try:
                secrets = credentials_of(row)
            except Exception:  # an undecryptable account cannot verify anything
                log.warning("carrier account %s: credentials cannot be decrypted", row.id)
                continue
            out.append(
                AccountKey(
                    id=row.id,
                    org_id=row.org_id,
                    carrier=row.carrier,
                    config=dict(row.config or {}),
                    secrets=secrets,
                )
            )
        return tuple(out)


# -- Twilio ------------------------------------------------------------------------------------

_TWILIO_DIGESTS = {"HMAC_SHA1": "sha1", "HMAC_SHA256": "sha256"}


def _canonical_unique(pairs: Iterable[tuple[str, str]]) -> str:
    """Twilio's canonical parameters where no name repeats: sorted by name alone."""
    return "".join([name + value for name, value in sorted(pairs)])


def _canonical(params: dict[str, list[str]]) -> str:
    """Twilio's canonical parameters with repeated names: each name (sorted), then each of its
    distinct values (sorted)."""
    parts = []
    for name in sorted(params):
        values = params[name]
        for value in sorted(set(values)) if len(values) > 1 else values:
            parts.append(name)
            parts.append(value)
    return "".join(parts)


def twilio_signature(
    token: str,
    url: str,
    params: MultiParams | dict[str, str],
    algorithm: str = "",
    *,
    keyed: Callable[[str, str], Mac] | None = None,
) -> str:
    """Twilio's webhook signature: base64 HMAC of the URL and the sorted parameters.

    The same value as ``RequestValidator(token).compute_signature(url, params, algorithm)`` (a
    property test holds them equal), in one C-level HMAC: the library's version costs a third of a
    warm routing decision. ``keyed`` gives an HMAC already keyed with ``token`` (to copy;
    ``AccountKey.keyed_hmac``). Raises ValueError for an algorithm Twilio does not define.
    """
    digest = _TWILIO_DIGESTS.get((algorithm or "HMAC_SHA1").upper())
    if digest is None:
        raise ValueError(f"unsupported webhook signature algorithm: {algorithm}")
    if isinstance(params, MultiParams):
        canonical = params.canonical()
    else:
        canonical = _canonical_unique(params.items())
    message = (url + canonical).encode()
    if keyed is None:
        mac = hmac.digest(token.encode(), message, digest)
    else:
        copy = keyed(token, digest).copy()
        copy.update(message)
        mac = copy.digest()
    return binascii.b2a_base64(mac, newline=False).decode("ascii")


def twilio_valid(
    token: str,
    url: str,
    params: MultiParams | dict[str, str],
    signature: str,
    *,
    settings_header: str = "",
    keyed: Callable[[str, str], Mac] | None = None,
) -> bool:
    if not token or not signature:
        return False
    algorithm = get_signature_algorithm(settings_header) if settings_header else "HMAC_SHA1"
    try:
        # The URL exactly as configured first (one HMAC); then the validator's own full check,
        # which also tries the URL with the default port added or removed.
        if "bodySHA256" not in url and hmac.compare_digest(
            twilio_signature(token, url, params, algorithm, keyed=keyed), signature
        ):
            return True
        return bool(RequestValidator(token).validate(url, params, signature, algorithm=algorithm))
    except Exception:  # a malformed URL or value must read as "not verified", never as a 500
        return False


# -- SignalWire --------------------------------------------------------------------------------


def _url_variants(url: str) -> list[str]:
    """The URL as configured, and with the default port added or removed (as SignalWire's SDK does)."""
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    variants = [url]
    if parts.port is None:
        variants.append(urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}")))
    elif parts.port == default:
        netloc = parts.netloc.rsplit(":", 1)[0]
        variants.append(urlunsplit(parts._replace(netloc=netloc)))
    return variants


def signalwire_valid(
    signing_key: str,
    url: str,
    params: MultiParams,
    raw_body: bytes,
    *,
    signature: str | None,
    sha256_signature: str | None = None,
) -> bool:
    """Either scheme: hex HMAC over URL + raw body (SHA-256 header preferred), or the cXML form scheme."""
    if not signing_key or not (signature or sha256_signature):
        return False
    key = signing_key.encode()
    try:
        body = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        body = raw_body.decode("latin-1")
    for candidate in _url_variants(url):
        message = (candidate + body).encode()
        if sha256_signature and hmac.compare_digest(
            hmac.new(key, message, hashlib.sha256).hexdigest(), sha256_signature.strip().lower()
        ):
            return True
        if signature and hmac.compare_digest(
            hmac.new(key, message, hashlib.sha1).hexdigest(), signature.strip().lower()
        ):
            return True
    if signature and twilio_valid(signing_key, url, params, signature.strip()):
        return True
    return False


# -- Telnyx ------------------------------------------------------------------------------------


def telnyx_valid(
    public_key_b64: str,
    raw_body: bytes,
    *,
    signature: str | None,
    timestamp: str | None,
    now: float | None = None,
) -> bool:
    if not public_key_b64 or not signature or not timestamp:
        return False
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > TIMESTAMP_TOLERANCE_S:
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        key.verify(base64.b64decode(signature, validate=True), timestamp.encode() + b"|" + raw_body)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


# -- Vonage ------------------------------------------------------------------------------------


def vonage_unverified_api_key(token: str) -> str | None:
    """The ``api_key`` claim, read without verification (to find which secret to verify with)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    value = claims.get("api_key")
    return value if isinstance(value, str) else None


def _payload_hashes(raw_body: bytes, query: Sequence[tuple[str, str]], method: str) -> set[str]:
    """The SHA-256 hex digests a genuine ``payload_hash`` may take for this request."""
    out: set[str] = set()
    if method == "GET":
        pairs = dict(query)
        for ordered in (pairs, dict(sorted(pairs.items()))):
            text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)
            out.add(hashlib.sha256(text.encode()).hexdigest())
        return out
    out.add(hashlib.sha256(raw_body).hexdigest())
    try:
        parsed = json.loads(raw_body or b"{}")
    except ValueError:
        return out
    for sort in (False, True):
        text = json.dumps(parsed, separators=(",", ":"), sort_keys=sort, ensure_ascii=False)
        out.add(hashlib.sha256(text.encode()).hexdigest())
    return out


@dataclass(frozen=True, slots=True)
class VonageClaims:
    """A verified Vonage token: what replay protection needs (the token id and its lifetime)."""

    jti: str
    expires: float  # epoch seconds after which the token is refused anyway


def vonage_check(
    signature_secret: str,
    token: str,
    *,
    raw_body: bytes,
    query: Sequence[tuple[str, str]],
    method: str,
    now: float | None = None,
) -> VonageClaims | str:
    """The verified claims, or why the token is refused.

    A request with a body must carry ``payload_hash`` (a token alone would vouch for any body);
    a GET's query is covered when the hash is there. Replays are the caller's to refuse (the
    ``jti`` seen before, within ``expires``).
    """
    if not signature_secret:
        return "the account has no signature_secret"
    if not token:
        return "no token"
    try:
        claims = jwt.decode(
            token,
            signature_secret,
            algorithms=["HS256"],
            options={"verify_exp": True, "verify_iat": False, "verify_nbf": True, "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        return "token expired"
    except jwt.PyJWTError:
        return "signature does not match"
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        return "token has no iat"
    current = time.time() if now is None else now
    if abs(current - float(iat)) > TIMESTAMP_TOLERANCE_S:
        return f"token issued more than {TIMESTAMP_TOLERANCE_S} s from now"
    expected = claims.get("payload_hash")
    if expected is None:
        if raw_body.strip():
            return "token has no payload_hash for a request with a body"
    elif not isinstance(expected, str) or expected.lower() not in _payload_hashes(raw_body, query, method):
        return "payload_hash does not match the request"
    jti = claims.get("jti")
    # Without a jti the token itself is what must not come twice.
    key = jti if isinstance(jti, str) and jti else "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    expires = float(iat) + TIMESTAMP_TOLERANCE_S
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        expires = min(expires, float(exp))
    return VonageClaims(jti=key[:200], expires=expires)


def vonage_valid(
    signature_secret: str,
    token: str,
    *,
    raw_body: bytes,
    query: Sequence[tuple[str, str]],
    method: str,
    now: float | None = None,
) -> bool:
    """``vonage_check`` as a yes or no (replays not considered)."""
    result = vonage_check(signature_secret, token, raw_body=raw_body, query=query, method=method, now=now)
    return isinstance(result, VonageClaims)
