"""Signature checks against signatures made the carrier's way (with its own library where one exists)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from signalwire.core.security.webhook_validator import validate_webhook_signature
from twilio.request_validator import RequestValidator

from numberplane.routing.verify import (
    AccountKey,
    MultiParams,
    signalwire_valid,
    telnyx_valid,
    twilio_signature,
    twilio_valid,
    vonage_unverified_api_key,
    vonage_valid,
)

URL = "https://np.example.com/voice/twilio"
PARAMS = [("CallSid", "CA1"), ("AccountSid", "AC1"), ("From", "+12125550123"), ("To", "+14155550100")]


def test_twilio_signature_from_twilios_library() -> None:
    token = "tok_" + "a" * 28
    signature = RequestValidator(token).compute_signature(URL, dict(PARAMS))
    assert twilio_valid(token, URL, MultiParams(PARAMS), signature)
    assert not twilio_valid("other", URL, MultiParams(PARAMS), signature)
    assert not twilio_valid(token, URL + "?x=1", MultiParams(PARAMS), signature)
    assert not twilio_valid(token, URL, MultiParams([*PARAMS[:-1], ("To", "+14155550101")]), signature)
    assert not twilio_valid(token, URL, MultiParams(PARAMS), "")
    assert not twilio_valid("", URL, MultiParams(PARAMS), signature)


_names = st.text(alphabet=st.sampled_from(list("ACFTSabcz0_é")), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(_names, st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=10)),
        max_size=8,
    ),
    token=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20),
    algorithm=st.sampled_from(["", "HMAC_SHA1", "HMAC_SHA256", "hmac_sha256"]),
)
def test_twilio_signature_equals_twilios_library(
    pairs: list[tuple[str, str]], token: str, algorithm: str
) -> None:
    """Our one-HMAC signature is twilio's ``compute_signature``, repeated and empty values included."""
    theirs = RequestValidator(token).compute_signature(URL, MultiParams(pairs), algorithm or None)
    assert twilio_signature(token, URL, MultiParams(pairs), algorithm) == theirs
    # and with the account's pre-keyed HMAC, twice (a copy per message leaves it unhashed)
    account = AccountKey(id="acc", org_id="org", carrier="twilio", secrets={"auth_token": token})
    for _ in range(2):
        assert twilio_signature(token, URL, MultiParams(pairs), algorithm, keyed=account.keyed_hmac) == theirs
    flat = dict(pairs)
    assert twilio_signature(token, URL, flat, algorithm) == RequestValidator(token).compute_signature(
        URL, flat, algorithm or None
    )


def test_twilio_signature_refuses_an_unknown_algorithm() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        twilio_signature("t", URL, MultiParams(PARAMS), "HMAC_MD5")
    assert not twilio_valid("t", URL, MultiParams(PARAMS), "x", settings_header="algorithm=HMAC_MD5")


def test_twilio_signature_with_query_and_port() -> None:
    token = "t0ken"
    url = "https://np.example.com:8443/voice/twilio?tenant=a%20b"
    signature = RequestValidator(token).compute_signature(url, dict(PARAMS))
    assert twilio_valid(token, url, MultiParams(PARAMS), signature)


def test_twilio_sha256_signature_settings() -> None:
    validator = RequestValidator("shared")
    signature = validator.compute_signature(URL, dict(PARAMS), "HMAC_SHA256")
    header = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    assert twilio_valid("shared", URL, MultiParams(PARAMS), signature, settings_header=header)
    assert not twilio_valid("shared", URL, MultiParams(PARAMS), signature)


def test_signalwire_form_scheme() -> None:
    key = "PSK_" + "k" * 20
    url = "https://np.example.com/voice/signalwire"
    signature = RequestValidator(key).compute_signature(url, dict(PARAMS))
    raw = urlencode(PARAMS).encode()
    assert validate_webhook_signature(key, signature, url, raw.decode())  # SignalWire's own SDK agrees
    assert signalwire_valid(key, url, MultiParams(PARAMS), raw, signature=signature)
    assert not signalwire_valid("PSK_other", url, MultiParams(PARAMS), raw, signature=signature)


def test_signalwire_raw_body_scheme_sha1_and_sha256() -> None:
    key = "PSK_raw"
    url = "https://np.example.com/voice/signalwire"
    raw = urlencode(PARAMS).encode()
    sha1 = hmac.new(key.encode(), url.encode() + raw, hashlib.sha1).hexdigest()
    sha256 = hmac.new(key.encode(), url.encode() + raw, hashlib.sha256).hexdigest()
    assert validate_webhook_signature(key, sha1, url, raw.decode())
    params = MultiParams(PARAMS)
    assert signalwire_valid(key, url, params, raw, signature=sha1)
    assert signalwire_valid(key, url, params, raw, signature=None, sha256_signature=sha256)
    assert not signalwire_valid(key, url, params, raw + b"&x=1", signature=sha1)
    assert not signalwire_valid(key, url, params, raw, signature=None, sha256_signature=sha1)
    assert not signalwire_valid(key, url, params, raw, signature=None)
    # The URL with the default port written out is the same URL.
    with_port = hmac.new(
        key.encode(), b"https://np.example.com:443/voice/signalwire" + raw, hashlib.sha1
    ).hexdigest()
    assert signalwire_valid(key, url, params, raw, signature=with_port)


def _ed25519() -> tuple[Ed25519PrivateKey, str]:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private, base64.b64encode(public).decode()


def test_telnyx_ed25519() -> None:
    private, public_b64 = _ed25519()
    raw = urlencode(PARAMS).encode()
    ts = str(int(time.time()))
    signature = base64.b64encode(private.sign(ts.encode() + b"|" + raw)).decode()
    assert telnyx_valid(public_b64, raw, signature=signature, timestamp=ts)
    assert not telnyx_valid(public_b64, raw + b"x", signature=signature, timestamp=ts)
    assert not telnyx_valid(public_b64, raw, signature=signature, timestamp=str(int(ts) + 1))
    assert not telnyx_valid(_ed25519()[1], raw, signature=signature, timestamp=ts)
    assert not telnyx_valid(public_b64, raw, signature="not base64!", timestamp=ts)
    assert not telnyx_valid(public_b64, raw, signature=signature, timestamp="soon")
    assert not telnyx_valid("", raw, signature=signature, timestamp=ts)


def test_telnyx_timestamp_tolerance() -> None:
    private, public_b64 = _ed25519()
    raw = b"To=%2B14155550100"
    old = str(int(time.time()) - 301)
    signature = base64.b64encode(private.sign(old.encode() + b"|" + raw)).decode()
    assert not telnyx_valid(public_b64, raw, signature=signature, timestamp=old)
    assert telnyx_valid(public_b64, raw, signature=signature, timestamp=old, now=int(old) + 299)


SECRET = "sig-secret-" + "x" * 32
OTHER = "other-secret-" + "y" * 32
S = "s" * 40


def _vonage_token(secret: str, **claims: object) -> str:
    body = {"iat": int(time.time()), "jti": "j1", "api_key": "vk_1", **claims}
    return jwt.encode(body, secret, algorithm="HS256")


def test_vonage_signed_jwt() -> None:
    raw = json.dumps({"to": "14155550100", "from": "12125550123", "uuid": "u1"}).encode()
    token = _vonage_token(SECRET, payload_hash=hashlib.sha256(raw).hexdigest())
    assert vonage_unverified_api_key(token) == "vk_1"
    assert vonage_valid(SECRET, token, raw_body=raw, query=[], method="POST")
    assert not vonage_valid(OTHER, token, raw_body=raw, query=[], method="POST")
    assert not vonage_valid(SECRET, token, raw_body=raw + b" ", query=[], method="POST")


def test_vonage_payload_hash_of_get_query() -> None:
    query = [("to", "14155550100"), ("from", "12125550123"), ("uuid", "u1")]
    canonical = json.dumps(dict(query), separators=(",", ":"))
    token = _vonage_token(S, payload_hash=hashlib.sha256(canonical.encode()).hexdigest())
    assert vonage_valid(S, token, raw_body=b"", query=query, method="GET")
    assert not vonage_valid(S, token, raw_body=b"", query=[*query[:2], ("uuid", "u2")], method="GET")


def test_vonage_without_payload_hash_and_freshness() -> None:
    assert vonage_valid(S, _vonage_token(S), raw_body=b"", query=[], method="GET")
    stale = _vonage_token(S, iat=int(time.time()) - 3600)
    assert not vonage_valid(S, stale, raw_body=b"", query=[], method="GET")
    no_iat = jwt.encode({"api_key": "vk_1"}, S, algorithm="HS256")
    assert not vonage_valid(S, no_iat, raw_body=b"", query=[], method="GET")
    none_alg = jwt.encode({"api_key": "vk_1", "iat": int(time.time())}, None, algorithm="none")  # type: ignore[arg-type]
    assert not vonage_valid(S, none_alg, raw_body=b"", query=[], method="GET")
    assert vonage_unverified_api_key("garbage") is None


@pytest.mark.parametrize("bad", ["", "x", "a.b.c"])
def test_vonage_garbage_tokens(bad: str) -> None:
    assert not vonage_valid(S, bad, raw_body=b"", query=[], method="GET")
