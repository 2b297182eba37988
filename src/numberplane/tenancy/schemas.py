"""Org and key schemas."""

from __future__ import annotations

import datetime as dt

from pydantic import Field

from numberplane.kernel.schemas import Model, ReadModel


class OrgCreate(Model):
    name: str = Field(min_length=1, max_length=200)


class CreatedKey(ReadModel):
    """Returned once, when a key is made: the secret is never shown again."""

    org_id: str
    key_id: str
    secret: str
    token: str


class KeyRead(ReadModel):
    id: str
    org_id: str
    name: str | None = None
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None


class OrgRead(ReadModel):
    id: str
    name: str
    default_carrier_account_id: str | None = None
    created_at: dt.datetime
