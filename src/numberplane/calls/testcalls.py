"""Test calls: the number's carrier calls Numberplane, exactly as for a real call.

Nothing is dialled anywhere. The request a carrier would send when the number rings is built
and signed with the number's carrier account's own credentials (``carriers.callsign``) and sent
to the number's voice URL under ``NUMBERPLANE_PUBLIC_URL``, through whatever sits in front of
the server (a proxy, TLS), so the whole call path is exercised: signature check, routing, the
answer, the call record. Then the carrier's status callbacks follow (answered and completed with
the duration, or no-answer). The answer is the settled call record plus what the carrier got.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid

import httpx

from numberplane.calls.reading import find_call
from numberplane.calls.recorder import Recorder
from numberplane.calls.schemas import CallRead, CarrierAnswer, PlacedTestCall, PlaceTestCall
from numberplane.calls.service import FINAL
from numberplane.carriers import callsign
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.registry import credentials_of
from numberplane.carriers.urls import number_config_for
from numberplane.kernel import e164
from numberplane.kernel.db import Database
from numberplane.kernel.errors import AppError, NotFound, ValidationFailed
from numberplane.numbers.reading import resolve

MAX_ANSWER_BODY = 65_536
SETTLE_SECONDS = 5.0


class TestCallFailed(AppError):
    status = 502
    code = "test_call_failed"
    title = "Test call failed"


async def place(
    *,
    db: Database,
    org_id: str,
    request: PlaceTestCall,
    public_url: str,
    timeout: float,
    recorder: Recorder | None,
) -> PlacedTestCall:
    """Ring ``request.to`` through its carrier's webhooks; the settled record and the answer."""
    async with db.session() as session:
        try:
            number = await resolve(session, org_id, request.to)
        except NotFound:
            raise ValidationFailed.field("to", "is not one of this org's phone numbers") from None
        account = (
            await session.get(CarrierAccount, number.carrier_account_id)
            if number.carrier_account_id
            else None
        )
    try:
        caller = e164.to_e164(request.from_)
    except e164.InvalidPhoneNumber as exc:
        raise ValidationFailed.field("from", exc.reason) from None
    if account is None:
        raise ValidationFailed.field(
            "to", f"is on no carrier account ({number.carrier}): nothing would call it"
        )
    carrier = account.carrier
    if carrier not in callsign.SIGNABLE:
        raise ValidationFailed.field(
            "to",
            f"is on {carrier}, which signs its webhooks with its own private key: it cannot be test-called",
        )
    config, creds = dict(account.config or {}), credentials_of(account)
    base = public_url.rstrip("/")
    to = number.phone_number
    settle: list[tuple[str, int]] = (
        [("in-progress", 0), ("completed", request.duration_s)] if request.answer else [("no-answer", 0)]
    )
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            if carrier == "vonage":
                call_id, answer = await _vonage(client, base, to, caller, settle, config, creds)
            else:
                call_id, answer = await _form(client, carrier, base, to, caller, settle, config, creds)
    except callsign.CannotSign as exc:
        raise ValidationFailed.field("to", f"cannot be test-called: {exc}") from None
    except httpx.HTTPError as exc:
        raise TestCallFailed(
            f"the test call could not reach {base} (NUMBERPLANE_PUBLIC_URL): {exc.__class__.__name__}"
        ) from None
    record = await _settled(db, recorder, org_id, carrier, call_id)
    if record is None:
        raise TestCallFailed(
            f"{base} answered {answer.status} but recorded no call: is NUMBERPLANE_PUBLIC_URL this server?",
            extra={"answer": answer.model_dump()},
        )
    return PlacedTestCall(**record.model_dump(by_alias=False), answer=answer)


async def _send(client: httpx.AsyncClient, req: callsign.SignedRequest) -> httpx.Response:
    return await client.request(req.method, req.url, content=req.body, headers=req.headers)


def _answer(response: httpx.Response) -> CarrierAnswer:
    return CarrierAnswer(
        status=response.status_code,
        content_type=response.headers.get("content-type"),
        body=response.text[:MAX_ANSWER_BODY],
    )


async def _form(
    client: httpx.AsyncClient,
    carrier: str,
    base: str,
    to: str,
    caller: str,
    settle: list[tuple[str, int]],
    config: dict[str, object],
    creds: dict[str, object],
) -> tuple[str, CarrierAnswer]:
    urls = number_config_for(carrier=carrier, public_url=base, sms=False, friendly_name=None)
    assert urls.voice_url is not None and urls.status_callback_url is not None
    call_id = "CA" + secrets.token_hex(16) if carrier != "signalwire" else str(uuid.uuid4())
    call = {"CallSid": call_id, "From": caller, "To": to, "Direction": "inbound", "ApiVersion": "2010-04-01"}
    signed = callsign.form_call(
        carrier, urls.voice_url, {**call, "CallStatus": "ringing"}, config=config, credentials=creds
    )
    answer = _answer(await _send(client, signed))
    if answer.status == 200:
        for status, duration in settle:
            params = {**call, "CallStatus": status}
            if status != "in-progress":
                params["CallDuration"] = str(duration)
            await _send(
                client,
                callsign.form_call(
                    carrier, urls.status_callback_url, params, config=config, credentials=creds
                ),
            )
    return call_id, answer


async def _vonage(
    client: httpx.AsyncClient,
    base: str,
    to: str,
    caller: str,
    settle: list[tuple[str, int]],
    config: dict[str, object],
    creds: dict[str, object],
) -> tuple[str, CarrierAnswer]:
    call_id = str(uuid.uuid4())
    call = {
        "to": to.lstrip("+"),
        "from": caller.lstrip("+"),
        "uuid": call_id,
        "conversation_uuid": "CON-" + call_id,
    }
    signed = callsign.vonage_call(f"{base}/voice/vonage/answer", call, config=config, credentials=creds)
    answer = _answer(await _send(client, signed))
    if answer.status == 200:
        words = {"in-progress": "answered", "completed": "completed", "no-answer": "unanswered"}
        for status, duration in settle:
            event = {**call, "status": words[status], "direction": "inbound"}
            if status != "in-progress":
                event["duration"] = str(duration)
            await _send(
                client,
                callsign.vonage_call(f"{base}/voice/vonage/event", event, config=config, credentials=creds),
            )
    return call_id, answer


async def _settled(
    db: Database, recorder: Recorder | None, org_id: str, carrier: str, call_id: str
) -> CallRead | None:
    """The record once its final status is written: this process's recorder is flushed at once;
    another process behind the public URL writes within its flush interval (bounded wait)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    record: CallRead | None = None
    while True:
        if recorder is not None:
            await recorder.flush()
        record = await find_call(db=db, org_id=org_id, carrier=carrier, carrier_call_id=call_id)
        if (record is not None and record.status in FINAL) or time.monotonic() > deadline:
            return record
        await asyncio.sleep(0.05)
