"""Test data for routing: carrier accounts, agents and numbers as rows, and carrier-signed requests."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from numberplane.agents.models import Agent, AgentVersion
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.registry import credentials_of
from numberplane.kernel import changes as invalidation
from numberplane.kernel.crypto import encrypt
from numberplane.kernel.db import Actor, Database
from numberplane.kernel.ids import new_id
from numberplane.numbers.models import PhoneNumber, PhoneNumberAgent
from tests.support import AreaCodes


@dataclass
class Account:
    id: str
    carrier: str
    config: dict[str, Any]
    secrets: dict[str, Any]
    private_key: Ed25519PrivateKey | None = None


@dataclass
class World:
    db: Database
    org_id: str
    public_url: str
    area_codes: AreaCodes
    accounts: dict[str, Account] = field(default_factory=dict)
    _area: str | None = None
    _line: int = 100

    # -- rows -----------------------------------------------------------------------------------

    def fresh_number(self) -> str:
        if self._area is None or self._line > 199:
            self._area, self._line = self.area_codes.take(), 100
        number = f"+1{self._area}5550{self._line:03d}"
        self._line += 1
        return number

    async def add_account(
        self, carrier: str, config: dict[str, Any], creds: dict[str, Any], **kw: Any
    ) -> Account:
        row = CarrierAccount(
            id=new_id(),
            org_id=kw.get("org_id", self.org_id),
            carrier=carrier,
            name=f"{carrier} test",
            config=config,
            credentials_enc=encrypt(json.dumps(creds)),
        )
        async with self.db.session() as session:
            session.add(row)
            await session.commit()
        return Account(row.id, carrier, config, creds, kw.get("private_key"))

    async def agent(
        self,
        *,
        stream_url: str | None = None,
        sip_uri: str | None = None,
        versions: int = 1,
        org_id: str | None = None,
        version_connects: dict[int, dict[str, str]] | None = None,
    ) -> str:
        """An agent with ``versions`` versions; the latest connects to stream_url/sip_uri."""
        agent_id = new_id()
        latest = {"connect": {k: v for k, v in (("stream_url", stream_url), ("sip_uri", sip_uri)) if v}}
        async with self.db.session() as session:
            session.add(
                Agent(id=agent_id, org_id=org_id or self.org_id, name="bot", version=versions, config=latest)
            )
            await session.flush()
            for v in range(1, versions + 1):
                connect = (version_connects or {}).get(v) or latest["connect"]
                session.add(AgentVersion(agent_id=agent_id, version=v, config={"connect": connect}))
            await session.commit()
        return agent_id

    async def number(
        self,
        account: Account | None,
        *,
        agents: list[tuple[str, int | None, float]] | None = None,
        e164: str | None = None,
        **fields: Any,
    ) -> PhoneNumber:
        e164 = e164 or self.fresh_number()
        row = PhoneNumber(
            id=new_id(),
            org_id=fields.pop("org_id", self.org_id),
            phone_number=e164,
            country="US",
            status=fields.pop("status", "active"),
            carrier=account.carrier if account else "sip",
            carrier_account_id=account.id if account else None,
            **fields,
        )
        async with self.db.uow(Actor.system()) as uow:
            uow.session.add(row)
            await uow.session.flush()
            for position, (agent_id, version, weight) in enumerate(agents or []):
                uow.session.add(
                    PhoneNumberAgent(
                        phone_number_id=row.id,
                        direction="inbound",
                        agent_id=agent_id,
                        version=version,
                        weight=weight,
                        position=position,
                    )
                )
            invalidation.numbers_changed(uow, [e164])
            await uow.commit()
        return row

    async def update_number(self, number_id: str, **values: Any) -> None:
        async with self.db.uow(Actor.system()) as uow:
            row = await uow.session.get(PhoneNumber, number_id)
            assert row is not None
            for key, value in values.items():
                setattr(row, key, value)
            row.touch()
            invalidation.numbers_changed(uow, [row.phone_number])
            await uow.commit()

    async def new_agent_version(self, agent_id: str, *, stream_url: str) -> int:
        async with self.db.uow(Actor.system()) as uow:
            agent = await uow.session.get(Agent, agent_id)
            assert agent is not None
            agent.version += 1
            agent.config = {"connect": {"stream_url": stream_url}}
            uow.session.add(AgentVersion(agent_id=agent_id, version=agent.version, config=agent.config))
            invalidation.agents_changed(uow, [agent_id])
            await uow.commit()
            return agent.version

    # -- signed requests ---------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.public_url.rstrip("/") + path

    @property
    def sandbox(self) -> Account:
        return self.accounts["sandbox"]

    def twilio_request(
        self, account: Account, params: dict[str, str], path: str = "/voice/twilio"
    ) -> tuple[str, bytes, dict[str, str]]:
        params = {"AccountSid": account.config["account_sid"], **params}
        token = account.secrets["auth_token"]
        signature = RequestValidator(token).compute_signature(self.url(path), params)
        headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
        return path, urlencode(params).encode(), headers

    def signalwire_request(
        self, account: Account, params: dict[str, str], path: str = "/voice/signalwire", scheme: str = "form"
    ) -> tuple[str, bytes, dict[str, str]]:
        params = {"AccountSid": account.config["project_id"], **params}
        key = account.secrets["signing_key"]
        body = urlencode(params).encode()
        if scheme == "form":
            signature = RequestValidator(key).compute_signature(self.url(path), params)
        else:
            import hmac

            signature = hmac.new(key.encode(), self.url(path).encode() + body, hashlib.sha1).hexdigest()
        headers = {"X-SignalWire-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
        return path, body, headers

    def telnyx_request(
        self, account: Account, params: dict[str, str], path: str = "/voice/telnyx", ts: int | None = None
    ) -> tuple[str, bytes, dict[str, str]]:
        params = {
            "AccountSid": account.config["account_sid"],
            "ConnectionId": "1568109700606592442",
            **params,
        }
        body = urlencode(params).encode()
        stamp = str(ts if ts is not None else int(time.time()))
        assert account.private_key is not None
        signature = base64.b64encode(account.private_key.sign(stamp.encode() + b"|" + body)).decode()
        headers = {
            "telnyx-signature-ed25519": signature,
            "telnyx-timestamp": stamp,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        return path, body, headers

    def vonage_token(self, account: Account, payload: bytes | None = None, **claims: Any) -> str:
        body: dict[str, Any] = {
            "iat": int(time.time()),
            "jti": secrets.token_hex(8),
            "api_key": account.config["api_key"],
            "application_id": str(uuid.uuid4()),
            **claims,
        }
        if payload is not None:
            body["payload_hash"] = hashlib.sha256(payload).hexdigest()
        return jwt.encode(body, account.secrets["signature_secret"], algorithm="HS256")

    async def post(
        self, client: httpx.AsyncClient, request: tuple[str, bytes, dict[str, str]]
    ) -> httpx.Response:
        path, body, headers = request
        return await client.post(path, content=body, headers=headers)


async def make_world(db: Database, org_id: str, public_url: str, area_codes: AreaCodes) -> World:
    world = World(db=db, org_id=org_id, public_url=public_url, area_codes=area_codes)
    async with db.session() as session:
        sandbox = await session.scalar(
            select(CarrierAccount).where(CarrierAccount.org_id == org_id, CarrierAccount.carrier == "sandbox")
        )
    assert sandbox is not None
    world.accounts["sandbox"] = Account(sandbox.id, "sandbox", dict(sandbox.config), credentials_of(sandbox))
    world.accounts["twilio"] = await world.add_account(
        "twilio", {"account_sid": "AC" + secrets.token_hex(16)}, {"auth_token": secrets.token_hex(16)}
    )
    world.accounts["signalwire"] = await world.add_account(
        "signalwire",
        {"project_id": str(uuid.uuid4()), "space": "example.signalwire.com"},
        {"api_token": "PT" + secrets.token_hex(8), "signing_key": "PSK_" + secrets.token_hex(12)},
    )
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    world.accounts["telnyx"] = await world.add_account(
        "telnyx",
        {"account_sid": str(uuid.uuid4()), "public_key": base64.b64encode(public).decode()},
        {"api_key": "KEY" + secrets.token_hex(8)},
        private_key=private,
    )
    world.accounts["vonage"] = await world.add_account(
        "vonage",
        {"api_key": secrets.token_hex(4)},
        {"api_secret": secrets.token_hex(8), "signature_secret": secrets.token_hex(24)},
    )
    return world
