"""Reconcile: make Numberplane's records and a carrier account's holdings agree.

One run, for one account:

1. Settle what is in flight: pending purchase orders (``purchase.resolve_pending_orders``,
   which asks the carrier and never buys blindly) and numbers left ``releasing``
   (``release.finish_releases``).
2. List what the carrier holds (``adapter.list_owned``) and compare with our active numbers:
   - a webhook changed at the carrier → put back with ``adapter.configure``, reported;
   - a number the carrier no longer holds (confirmed with ``adapter.find``) → our record is
     marked ``released`` (``lifecycle.mark_released``) with
     ``carrier_sync.status = "missing_at_carrier"``, reported;
   - a number the carrier holds that we do not know → reported only: never adopted, never released.
   Every drift emits ``carrier.drift_detected`` in the same unit of work as the record change.

Every loop is bounded: ``max_numbers`` per run on each side and the adapter's page limit. A
number is only declared missing when the carrier's whole list was read and ``find`` agrees, so a
partial or failed listing never releases anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

from sqlalchemy import or_, select

from numberplane.carriers import registry
from numberplane.carriers.base import CarrierAdapter, CarrierError, CarrierNumber, NumberConfig
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.schemas import ROUTING_ONLY, ReconcileDrift, ReconcileReport
from numberplane.carriers.service import display
from numberplane.kernel.db import Actor, Database, UnitOfWork, utcnow
from numberplane.kernel.errors import NotFound
from numberplane.kernel.outbox import emit
from numberplane.numbers import lifecycle
from numberplane.numbers.configuration import carrier_config
from numberplane.numbers.models import HOLDING_STATUSES, Order, PhoneNumber
from numberplane.numbers.purchase import resolve_pending_orders
from numberplane.numbers.release import finish_releases

log = logging.getLogger("numberplane.reconcile")

MAX_NUMBERS = 10_000  # per run, on each side
BATCH = 500
MAX_CONFIRMATIONS = 200  # find() calls per run to confirm numbers missing at the carrier
MAX_ACCOUNTS = 10_000  # per CLI run

Progress = Callable[[str, int, int | None], None]  # (phase, done, total or None)


def _noop(phase: str, done: int, total: int | None) -> None:
    return None


def default_drift(number: CarrierNumber, expected: NumberConfig) -> dict[str, dict[str, str | None]]:
    """Where the carrier's settings differ from what Numberplane set (fields it owns only)."""
    out: dict[str, dict[str, str | None]] = {}
    if expected.voice_url and number.voice_url != expected.voice_url:
        out["voice_url"] = {"carrier": number.voice_url, "expected": expected.voice_url}
    if expected.sms_url and number.sms_url != expected.sms_url:
        out["sms_url"] = {"carrier": number.sms_url, "expected": expected.sms_url}
    return out


def drift_of(
    adapter: CarrierAdapter, number: CarrierNumber, expected: NumberConfig
) -> dict[str, dict[str, str | None]]:
    custom = getattr(adapter, "drift", None)
    if callable(custom):
        result: dict[str, dict[str, str | None]] = custom(number, expected)
        return result
    return default_drift(number, expected)


def expected_config(account: CarrierAccount, pn: PhoneNumber) -> NumberConfig:
    return carrier_config(carrier=account.carrier, capabilities=pn.capabilities, name=pn.name)


async def reconcile_account(
    *,
    db: Database,
    account_id: str,
    actor: Actor | None = None,
    max_numbers: int = MAX_NUMBERS,
    progress: Progress | None = None,
) -> ReconcileReport:
    progress = progress or _noop
    max_numbers = max(1, min(max_numbers, MAX_NUMBERS))
    async with db.session() as session:
        account = await session.get(CarrierAccount, account_id)
    if account is None:
        raise NotFound(f"carrier account {account_id} not found", code="carrier_account_not_found")
    run = _Run(db=db, account=account, actor=actor, max_numbers=max_numbers, progress=progress)
    return await run.go()


class _Run:
    def __init__(
        self,
        *,
        db: Database,
        account: CarrierAccount,
        actor: Actor | None,
        max_numbers: int,
        progress: Progress,
    ) -> None:
        self.db = db
        self.account = account
        self.actor = actor
        self.max_numbers = max_numbers
        self.progress = progress
        self.started = utcnow()
        self.errors: list[str] = []
        self.drift: list[ReconcileDrift] = []
        self.complete = True
        self.checked = 0
        self.in_sync = 0
        self.confirmations = 0

    def _drift_event(
        self,
        uow: UnitOfWork,
        kind: str,
        phone_number: str,
        carrier_number_id: str | None,
        *,
        number_id: str | None = None,
        org_id: str | None = None,
        **detail: Any,
    ) -> None:
        """``carrier.drift_detected``: about our number (``number_id``), or about the account
        when the carrier holds a number we do not know."""
        data: dict[str, Any] = {
            "account_id": self.account.id,
            "carrier": self.account.carrier,
            "kind": kind,
            "phone_number": phone_number,
        }
        if number_id is not None:
            data["phone_number_id"] = number_id
        data.update(carrier_number_id=carrier_number_id, **detail)
        emit(
            uow,
            type="carrier.drift_detected",
            org_id=org_id if number_id is not None else self.account.org_id,
            subject_type="phone_number" if number_id is not None else "carrier_account",
            subject_id=number_id if number_id is not None else self.account.id,
            data=data,
        )

    def _actor(self, org_id: str | None) -> Actor:
        if self.actor is not None:
            return self.actor
        return Actor.system(org_id)

    async def go(self) -> ReconcileReport:
        account = self.account
        self.progress("orders", 0, None)
        orders = await resolve_pending_orders(db=self.db, account_id=account.id)
        self.progress("orders", sum(orders.values()), sum(orders.values()))
        self.progress("releases", 0, None)
        releases = await finish_releases(db=self.db, account_id=account.id)
        self.progress("releases", sum(releases.values()), sum(releases.values()))
        held: dict[str, CarrierNumber] = {}
        if account.carrier not in ROUTING_ONLY:
            adapter = registry.adapter_for(account, db=self.db)
            listed_all = await self._list(adapter, held)
            ours_all = await self._compare(adapter, held, listed_all)
            if listed_all and ours_all:
                await self._unknown(held)
        return ReconcileReport(
            account_id=account.id,
            carrier=account.carrier,
            started_at=self.started,
            finished_at=utcnow(),
            orders=orders,
            releases=releases,
            carrier_numbers=len(held),
            checked=self.checked,
            in_sync=self.in_sync,
            drift=self.drift,
            complete=self.complete,
            errors=self.errors,
        )

    # -- 1. what the carrier holds ------------------------------------------------------------
    async def _list(self, adapter: CarrierAdapter, held: dict[str, CarrierNumber]) -> bool:
        try:
            async with aclosing(adapter.list_owned()) as owned:  # type: ignore[type-var]
                async for number in owned:
                    held[number.phone_number] = number
                    if len(held) % 100 == 0:
                        self.progress("carrier", len(held), None)
                    if len(held) >= self.max_numbers:
                        self.complete = False
                        self.errors.append(
                            f"stopped listing after {self.max_numbers} numbers at "
                            f"{display(self.account.carrier)}; "
                            "numbers missing or unknown at the carrier were not judged"
                        )
                        return False
        except CarrierError as exc:
            self.complete = False
            self.errors.append(f"could not list the numbers {display(exc.carrier)} holds: {exc.message}")
            return False
        self.progress("carrier", len(held), len(held))
        return True

    # -- 2. our active numbers against it ----------------------------------------------------
    async def _compare(
        self, adapter: CarrierAdapter, held: dict[str, CarrierNumber], listed_all: bool
    ) -> bool:
        last = ""
        while True:
            room = self.max_numbers - self.checked
            if room <= 0:
                async with self.db.session() as session:
                    more = await session.scalar(self._active().where(PhoneNumber.id > last).limit(1))
                if more is not None:
                    self.complete = False
                    self.errors.append(f"stopped after checking {self.max_numbers} numbers; run again")
                    return False
                return True
            async with self.db.session() as session:
                rows = list(
                    await session.scalars(
                        self._active()
                        .where(PhoneNumber.id > last)
                        .order_by(PhoneNumber.id)
                        .limit(min(BATCH, room))
                    )
                )
            if not rows:
                return True
            for pn in rows:
                await self._check(adapter, pn, held.get(pn.phone_number), listed_all)
                self.checked += 1
            self.progress("compare", self.checked, None)
            last = rows[-1].id

    def _active(self) -> Any:
        return select(PhoneNumber).where(
            PhoneNumber.carrier_account_id == self.account.id, PhoneNumber.status == "active"
        )

    async def _check(
        self, adapter: CarrierAdapter, pn: PhoneNumber, number: CarrierNumber | None, listed_all: bool
    ) -> None:
        if number is None:
            if not listed_all:
                return
            if self.confirmations >= MAX_CONFIRMATIONS:
                self.complete = False
                return
            self.confirmations += 1
            try:
                number = await adapter.find(phone_number=pn.phone_number, reference=pn.carrier_reference)
            except CarrierError as exc:
                self.errors.append(
                    f"could not confirm {pn.phone_number} at {display(exc.carrier)}: {exc.message}"
                )
                self.complete = False
                return
            if number is None or number.status == "failed":
                await self._missing(pn)
                return
        expected = expected_config(self.account, pn)
        differences = drift_of(adapter, number, expected)
        if not differences:
            self.in_sync += 1
            sync = pn.carrier_sync or {}
            if sync.get("status") != "ok" or pn.carrier_number_id != number.carrier_number_id:
                await self._mark_ok(pn, number)
            return
        await self._repair(adapter, pn, number, expected, differences)

    async def _mark_ok(self, pn: PhoneNumber, number: CarrierNumber) -> None:
        sync = {"status": "ok", "voice_url": number.voice_url, "checked_at": utcnow().isoformat()}
        async with self.db.uow(self._actor(pn.org_id)) as uow:
            if await lifecycle.record_carrier_sync(
                uow,
                pn.id,
                sync,
                action="phone_number.carrier_checked",
                carrier_number_id=number.carrier_number_id,
                only_if_status="active",
            ):
                await uow.commit()

    async def _repair(
        self,
        adapter: CarrierAdapter,
        pn: PhoneNumber,
        number: CarrierNumber,
        expected: NumberConfig,
        differences: dict[str, dict[str, str | None]],
    ) -> None:
        error: str | None = None
        try:
            # The carrier call happens outside any transaction; its outcome is recorded below.
            await adapter.configure(carrier_number_id=number.carrier_number_id, config=expected)
        except CarrierError as exc:
            error = exc.message
            self.errors.append(f"could not repair {pn.phone_number}: {exc.message}")
        repaired = error is None
        sync = {
            "status": "repaired" if repaired else "drift",
            "drift": differences,
            "checked_at": utcnow().isoformat(),
            **({"error": error} if error else {}),
        }
        async with self.db.uow(self._actor(pn.org_id)) as uow:
            row = await lifecycle.record_carrier_sync(
                uow,
                pn.id,
                sync,
                action="phone_number.carrier_repaired" if repaired else "phone_number.carrier_drift",
                carrier_number_id=number.carrier_number_id,
                only_if_status="active",
                before={"carrier": {k: v["carrier"] for k, v in differences.items()}},
                after={"carrier": {k: v["expected"] for k, v in differences.items()}}
                if repaired
                else {"carrier_sync": sync},
            )
            if row is None:
                await uow.rollback()
                return
            self._drift_event(
                uow,
                "webhook_changed",
                pn.phone_number,
                number.carrier_number_id,
                number_id=pn.id,
                org_id=pn.org_id,
                drift=differences,
                repaired=repaired,
            )
            await uow.commit()
        self.drift.append(
            ReconcileDrift(
                kind="webhook_changed" if repaired else "repair_failed",
                phone_number=pn.phone_number,
                phone_number_id=pn.id,
                carrier_number_id=number.carrier_number_id,
                detail={"drift": differences, **({"error": error} if error else {})},
                repaired=repaired,
            )
        )

    async def _missing(self, pn: PhoneNumber) -> None:
        now = utcnow()
        async with self.db.uow(self._actor(pn.org_id)) as uow:
            released = await lifecycle.mark_released(
                uow,
                pn.id,
                from_status="active",
                carrier_sync={"status": "missing_at_carrier", "checked_at": now.isoformat()},
                action="phone_number.released_at_carrier",
            )
            if released is None:
                await uow.rollback()
                return
            self._drift_event(
                uow,
                "missing_at_carrier",
                pn.phone_number,
                pn.carrier_number_id,
                number_id=pn.id,
                org_id=pn.org_id,
                action="marked_released",
            )
            await uow.commit()
        log.warning("%s is no longer held at %s; marked released", pn.phone_number, self.account.carrier)
        self.drift.append(
            ReconcileDrift(
                kind="missing_at_carrier",
                phone_number=pn.phone_number,
                phone_number_id=pn.id,
                carrier_number_id=pn.carrier_number_id,
                detail={"action": "marked_released"},
                repaired=False,
            )
        )

    # -- 3. what the carrier holds that we do not ----------------------------------------------
    async def _unknown(self, held: dict[str, CarrierNumber]) -> None:
        numbers = sorted(held)
        known: set[str] = set()
        async with self.db.session() as session:
            for start in range(0, len(numbers), BATCH):
                chunk = numbers[start : start + BATCH]
                known.update(
                    await session.scalars(
                        select(PhoneNumber.phone_number).where(
                            PhoneNumber.carrier_account_id == self.account.id,
                            PhoneNumber.status.in_(HOLDING_STATUSES),
                            PhoneNumber.phone_number.in_(chunk),
                        )
                    )
                )
        unknown = [n for n in numbers if n not in known]
        for start in range(0, len(unknown), BATCH):
            async with self.db.uow(self._actor(self.account.org_id)) as uow:
                for phone_number in unknown[start : start + BATCH]:
                    number = held[phone_number]
                    self._drift_event(
                        uow, "unknown_at_carrier", phone_number, number.carrier_number_id, action="reported"
                    )
                    self.drift.append(
                        ReconcileDrift(
                            kind="unknown_at_carrier",
                            phone_number=phone_number,
                            carrier_number_id=number.carrier_number_id,
                            detail={
                                "action": "reported only: never adopted or released",
                                "voice_url": number.voice_url,
                            },
                        )
                    )
                await uow.commit()
        self.progress("unknown", len(unknown), len(unknown))


async def reconcile_all(
    *,
    db: Database,
    account_id: str | None = None,
    max_numbers: int = MAX_NUMBERS,
    progress: Progress | None = None,
) -> list[ReconcileReport]:
    """Reconcile one account, or every account (for the CLI). Sandbox accounts are skipped unless
    they hold numbers or orders: every org has one, and an idle one has nothing to reconcile."""
    async with db.session() as session:
        if account_id:
            ids = [account_id]
        else:
            busy = _busy_accounts()
            ids = list(
                await session.scalars(
                    select(CarrierAccount.id)
                    .where(or_(CarrierAccount.carrier != "sandbox", CarrierAccount.id.in_(busy)))
                    .order_by(CarrierAccount.id)
                    .limit(MAX_ACCOUNTS)
                )
            )
    reports = []
    for one in ids:
        reports.append(
            await reconcile_account(
                db=db, account_id=one, actor=Actor.cli(), max_numbers=max_numbers, progress=progress
            )
        )
    return reports


def _busy_accounts() -> Any:
    """Accounts that hold numbers or have purchases in flight."""
    return (
        select(PhoneNumber.carrier_account_id)
        .where(PhoneNumber.status.in_(HOLDING_STATUSES), PhoneNumber.carrier_account_id.is_not(None))
        .union(select(Order.carrier_account_id).where(Order.status == "pending"))
    )


async def idle_sandbox_accounts(*, db: Database, limit: int = MAX_ACCOUNTS) -> list[str]:
    """The sandbox accounts ``reconcile_all`` skips by design: they hold no numbers and have no
    purchases in flight, so there is nothing to settle or compare (every org has one)."""
    async with db.session() as session:
        return list(
            await session.scalars(
                select(CarrierAccount.id)
                .where(CarrierAccount.carrier == "sandbox", CarrierAccount.id.not_in(_busy_accounts()))
                .order_by(CarrierAccount.id)
                .limit(limit)
            )
        )
