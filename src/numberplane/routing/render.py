"""A Decision in each carrier's language: TwiML, LaML, TeXML, NCCO, or carrier-neutral JSON.

TwiML is built with twilio's own ``VoiceResponse``; SignalWire's LaML (cXML) and Telnyx's TeXML
are TwiML-compatible and use the same builder, so one decision reads the same everywhere.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from twilio.twiml.voice_response import VoiceResponse

from numberplane.routing.decide import Decision

XML_MEDIA_TYPE = "application/xml"
JSON_MEDIA_TYPE = "application/json"

FORMATS = ("twiml", "laml", "texml", "ncco", "json")
# Which answer language each carrier endpoint speaks.
CARRIER_FORMAT = {
    "twilio": "twiml",
    "sandbox": "twiml",
    "signalwire": "laml",
    "telnyx": "texml",
    "vonage": "ncco",
    "json": "json",
}
FORMAT_CARRIER = {
    "twiml": "twilio",
    "laml": "signalwire",
    "texml": "telnyx",
    "ncco": "vonage",
    "json": "json",
}

SIP_HEADER_PREFIX = "X-Numberplane-"
_SIP_HEADER_NAMES = {
    "agent_id": "Agent-Id",
    "agent_version": "Agent-Version",
    "call_id": "Call-Id",
    "phone_number_id": "Number-Id",
}


def sip_headers(decision: Decision) -> dict[str, str]:
    """Headers that travel with a SIP hand-over to an agent (ids only; values are short and safe)."""
    params = dict(decision.parameters)
    out: dict[str, str] = {}
    for key, suffix in _SIP_HEADER_NAMES.items():
        value = params.get(key)
        if value:
            out[SIP_HEADER_PREFIX + suffix] = value
    return out


def sip_uri_with_headers(uri: str, headers: dict[str, str]) -> str:
    """``sip:user@host;params?X-A=1&X-B=2``: how TwiML-style ``<Sip>`` carries custom headers."""
    if not headers:
        return uri
    query = "&".join(f"{name}={quote(xml_safe(value), safe='')}" for name, value in headers.items())
    return uri + ("&" if "?" in uri else "?") + query


def _language(decision: Decision) -> str | None:
    lang = decision.language
    return lang if lang and "-" in lang else None


def twiml_reference(decision: Decision) -> str:
    """TwiML built with twilio's own ``VoiceResponse``: the reference ``twiml`` must equal."""
    response = VoiceResponse()
    action = decision.action
    if action == "say_hangup":
        kwargs: dict[str, Any] = {}
        language = _language(decision)
        if language:
            kwargs["language"] = language
        response.say(decision.message or "", **kwargs)
        response.hangup()
    elif action == "reject":
        response.reject(reason="rejected")
    elif action == "dial_number":
        response.dial(decision.dial_number)
    elif action == "dial_sip":
        dial = response.dial()
        dial.sip(sip_uri_with_headers(decision.sip_uri or "", sip_headers(decision)))
    elif action == "redirect":
        response.redirect(decision.redirect_url, method=decision.redirect_method)
    elif action == "stream":
        connect = response.connect()
        stream = connect.stream(url=decision.stream_url)
        for name, value in decision.parameters:
            stream.parameter(name=name, value=value)
    return str(response.to_xml(xml_declaration=True))


# ElementTree's (hence VoiceResponse's) escaping, from the standard library.
_ATTR_ENTITIES = {'"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#09;"}
# Characters XML 1.0 cannot carry at all, escaped or not (its Char production): C0 controls but
# tab, newline and carriage return; lone surrogates; U+FFFE and U+FFFF. A caller ID, a call id or
# a stored URL holding one would make the whole document unreadable to the carrier.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
REPLACEMENT = "\ufffd"


def xml_safe(value: str) -> str:
    """``value`` with every character XML cannot carry replaced by U+FFFD (visible, not dropped)."""
    return _NOT_XML.sub(REPLACEMENT, value)


# Anything ``_attr`` or ``_text`` would change: most values (ids, URLs, numbers) have none, and
# one search costs a fraction of the escaping it skips (the renderer's main cost per call).
_CHANGED = re.compile('[&<>"\r\n\t\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')


def _attr(value: str) -> str:
    if _CHANGED.search(value) is None:
        return value
    return escape(xml_safe(value), _ATTR_ENTITIES)


def _text(value: str) -> str:
    if _CHANGED.search(value) is None:
        return value
    return escape(xml_safe(value))


def _el(
    name: str, attrs: tuple[tuple[str, str], ...] = (), text: str | None = None, children: str = ""
) -> str:
    """One element, serialised like ElementTree: attributes sorted by name, empty ones self-closed."""
    head = name + "".join(f' {key}="{_attr(value)}"' for key, value in sorted(attrs))
    inner = (_text(text) if text else "") + children
    return f"<{head}>{inner}</{name}>" if inner else f"<{head} />"


_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


# The usual answer's TwiML (a stream with ``stream_parameters``' six pairs) in five pieces
# around the values that change from call to call (the 3rd to 6th: the call id, the number's id,
# the called and the calling number); the pieces, which hold the URL, every name, the agent and
# its version, are shared by every call to the numbers of one agent. Bounded: oldest dropped.
_STREAM_PIECES: OrderedDict[tuple[str, ...], tuple[str, str, str, str, str]] = OrderedDict()
_STREAM_PIECES_MAX = 4_096


def _stream_pieces(key: tuple[str, ...]) -> tuple[str, str, str, str, str]:
    url, n0, v0, n1, v1, n2, n3, n4, n5 = key
    pieces = (
        f'{_XML_DECLARATION}<Response><Connect><Stream url="{_attr(url)}">'
        f'<Parameter name="{_attr(n0)}" value="{_attr(v0)}" />'
        f'<Parameter name="{_attr(n1)}" value="{_attr(v1)}" /><Parameter name="{_attr(n2)}" value="',
        f'" /><Parameter name="{_attr(n3)}" value="',
        f'" /><Parameter name="{_attr(n4)}" value="',
        f'" /><Parameter name="{_attr(n5)}" value="',
        '" /></Stream></Connect></Response>',
    )
    if len(_STREAM_PIECES) >= _STREAM_PIECES_MAX:
        _STREAM_PIECES.popitem(last=False)
    _STREAM_PIECES[key] = pieces
    return pieces


def twiml(decision: Decision) -> str:
    """TwiML (also LaML and TeXML: the verbs used here are shared by all three).

    Byte for byte what twilio's ``VoiceResponse`` builds (``twiml_reference``; a property test
    holds them equal) for every text XML can carry, written directly because ElementTree costs
    more than the whole decision. Where ``VoiceResponse`` would write a character XML cannot
    carry (a control character, a lone surrogate) and so a document no parser reads, this writes
    U+FFFD instead: the answer is always well-formed (a property test parses every output).
    """
    action = decision.action
    if action == "stream":  # nearly every answer: written in one piece
        pairs = decision.parameters
        if len(pairs) == 6:  # ``stream_parameters``' six: from pieces shared by calls of one agent
            (n0, v0), (n1, v1), (n2, v2), (n3, v3), (n4, v4), (n5, v5) = pairs
            if _CHANGED.search(f"{v2}{v3}{v4}{v5}") is None:
                key = (decision.stream_url or "", n0, v0, n1, v1, n2, n3, n4, n5)
                pieces = _STREAM_PIECES.get(key) or _stream_pieces(key)
                return f"{pieces[0]}{v2}{pieces[1]}{v3}{pieces[2]}{v4}{pieces[3]}{v5}{pieces[4]}"
        escape_each = _CHANGED.search("".join([text for pair in pairs for text in pair])) is not None
        params = "".join(
            [f'<Parameter name="{_attr(n)}" value="{_attr(v)}" />' for n, v in pairs]
            if escape_each  # one search over every value first: mostly, nothing to escape
            else [f'<Parameter name="{n}" value="{v}" />' for n, v in pairs]
        )
        url = _attr(decision.stream_url or "")
        stream = f'<Stream url="{url}">{params}</Stream>' if params else f'<Stream url="{url}" />'
        return f"{_XML_DECLARATION}<Response><Connect>{stream}</Connect></Response>"
    if action == "say_hangup":
        language = _language(decision)
        body = _el("Say", (("language", language),) if language else (), decision.message or "") + _el(
            "Hangup"
        )
    elif action == "reject":
        body = _el("Reject", (("reason", "rejected"),))
    elif action == "dial_number":
        body = _el("Dial", (), decision.dial_number)
    elif action == "dial_sip":
        body = _el(
            "Dial",
            children=_el("Sip", (), sip_uri_with_headers(decision.sip_uri or "", sip_headers(decision))),
        )
    elif action == "redirect":
        body = _el("Redirect", (("method", decision.redirect_method),), decision.redirect_url)
    else:
        raise ValueError(f"no TwiML for action {action!r}")
    return _XML_DECLARATION + _el("Response", children=body)


def _digits(e164: str | None) -> str:
    return (e164 or "").lstrip("+")


def ncco(decision: Decision) -> list[dict[str, Any]]:
    """Vonage NCCO. Vonage numbers are E.164 without '+'; ``from`` is the called number."""
    action = decision.action
    language = _language(decision)
    if action == "reject":
        return []  # an empty NCCO ends the call without answering anything
    if action in ("say_hangup", "redirect"):
        talk: dict[str, Any] = {
            "action": "talk",
            "text": decision.message or "This call cannot be completed.",
        }
        if language:
            talk["language"] = language
        return [talk]
    endpoint: dict[str, Any]
    if action == "dial_number":
        endpoint = {"type": "phone", "number": _digits(decision.dial_number)}
    elif action == "dial_sip":
        endpoint = {"type": "sip", "uri": decision.sip_uri, "headers": sip_headers(decision)}
    else:
        endpoint = {
            "type": "websocket",
            "uri": decision.stream_url,
            "content-type": "audio/l16;rate=16000",
            "headers": dict(decision.parameters),
        }
    connect: dict[str, Any] = {"action": "connect", "endpoint": [endpoint]}
    if decision.to:
        connect["from"] = _digits(decision.to)
    return [connect]


def as_json(decision: Decision) -> dict[str, Any]:
    return {"decision": decision.as_dict()}


def render(decision: Decision, fmt: str) -> tuple[bytes, str]:
    """(body, media type) of ``decision`` in ``fmt``."""
    if fmt in ("twiml", "laml", "texml"):
        return twiml(decision).encode(), XML_MEDIA_TYPE
    if fmt == "ncco":
        return json.dumps(ncco(decision), separators=(",", ":")).encode(), JSON_MEDIA_TYPE
    if fmt == "json":
        return json.dumps(as_json(decision), separators=(",", ":"), default=str).encode(), JSON_MEDIA_TYPE
    raise ValueError(f"unknown format {fmt!r}")


# Bodies for requests that fail verification or cannot be parsed: nothing that helps a prober.
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response />'
