"""Every table, imported in one place so metadata (and Alembic) sees them all."""

from numberplane.agents.models import Agent, AgentVersion
from numberplane.calls.models import Call
from numberplane.carriers.models import CarrierAccount, SandboxNumber
from numberplane.kernel.db import Base
from numberplane.kernel.outbox import AuditEvent, OutboxEvent
from numberplane.numbers.models import ImportRequest, Order, PhoneNumber, PhoneNumberAgent
from numberplane.tenancy.models import ApiKey, Org, SignInFailure, User, UserSession

__all__ = [
    "Agent",
    "AgentVersion",
    "ApiKey",
    "AuditEvent",
    "Base",
    "Call",
    "CarrierAccount",
    "ImportRequest",
    "Order",
    "Org",
    "OutboxEvent",
    "PhoneNumber",
    "PhoneNumberAgent",
    "SandboxNumber",
    "SignInFailure",
    "User",
    "UserSession",
]
