"""Carrier accounts and API keys: everyone sees them; admins and owners add, verify, create,
revoke. A key's secret (and a token) is shown on the response that made it, and never again."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError

from numberplane.carriers import service as carriers_service
from numberplane.carriers.schemas import CarrierAccountCreate
from numberplane.console.web import (
    PREFIX,
    change_form,
    db_of,
    render,
    request_id_of,
    require_user,
    see_other,
    text,
)
from numberplane.kernel.errors import ValidationFailed, validation_errors
from numberplane.tenancy import service as tenancy_service
from numberplane.tenancy.users import SessionUser

router = APIRouter(prefix=PREFIX, include_in_schema=False)
CARRIERS = ("twilio", "telnyx", "signalwire", "vonage")


@router.get("/carrier-accounts")
async def accounts_page(request: Request, user: SessionUser = Depends(require_user)) -> Response:
    accounts = await carriers_service.list_accounts(db=db_of(request), org_id=user.org_id)
    return render(request, "carrier_accounts.html", accounts=accounts, carriers=CARRIERS)


def _credentials(raw: str) -> dict[str, str]:
    """``name=value`` lines (what the carrier's console shows, pasted one per line)."""
    out: dict[str, str] = {}
    for number, line in enumerate(raw.splitlines()[:30], start=1):
        if not line.strip():
            continue
        name, eq, value = line.partition("=")
        if not eq or not name.strip():
            raise ValidationFailed.field("credentials", f"line {number} must read name=value")
        out[name.strip()[:64]] = value.strip()
    return out


@router.post("/carrier-accounts")
async def add_account(request: Request) -> Response:
    user, form = await change_form(request)
    try:
        data = CarrierAccountCreate.model_validate(
            {
                "carrier": text(form, "carrier", 20),
                "name": text(form, "name", 300),
                "credentials": _credentials(text(form, "credentials", 8000)),
                "make_default": form.get("make_default") == "1",
            }
        )
    except ValidationError as exc:
        raise ValidationFailed.of(validation_errors(exc)) from exc
    await carriers_service.create_account(
        db=db_of(request), actor=user.actor(request_id_of(request)), org_id=user.org_id, data=data
    )
    return see_other(f"{PREFIX}/carrier-accounts", "account_added")


@router.post("/carrier-accounts/{account_id}/verify")
async def verify_account(account_id: str, request: Request) -> Response:
    user, _form = await change_form(request)
    db = db_of(request)
    async with db.session() as session:
        account = await carriers_service.visible_account(session, org_id=user.org_id, account_id=account_id)
    await carriers_service.verify(account, db=db)  # one authenticated call at the carrier; no write
    return see_other(f"{PREFIX}/carrier-accounts", "verified")


@router.post("/carrier-accounts/{account_id}/default")
async def make_default(account_id: str, request: Request) -> Response:
    user, _form = await change_form(request)
    await carriers_service.set_default(
        db=db_of(request), actor=user.actor(request_id_of(request)), account_id=account_id
    )
    return see_other(f"{PREFIX}/carrier-accounts", "default_set")


# -- API keys ---------------------------------------------------------------------------------------


@router.get("/api-keys")
async def keys_page(request: Request, user: SessionUser = Depends(require_user)) -> Response:
    keys = await tenancy_service.list_keys(db=db_of(request), org_id=user.org_id)
    return render(request, "api_keys.html", keys=list(reversed(keys)), created=None)


@router.post("/api-keys")
async def create_key(request: Request) -> Response:
    user, form = await change_form(request)
    db = db_of(request)
    async with db.uow(user.actor(request_id_of(request))) as uow:
        created = await tenancy_service.create_key(
            uow=uow, org_id=user.org_id, name=text(form, "name", 200) or None
        )
        await uow.commit()
    keys = await tenancy_service.list_keys(db=db, org_id=user.org_id)
    return render(request, "api_keys.html", keys=list(reversed(keys)), created=created)


@router.post("/api-keys/{key_id}/revoke")
async def revoke_key(key_id: str, request: Request) -> Response:
    user, _form = await change_form(request)
    async with db_of(request).uow(user.actor(request_id_of(request))) as uow:
        await tenancy_service.revoke_key(uow=uow, key_id=key_id[:64], org_id=user.org_id)
        await uow.commit()
    return see_other(f"{PREFIX}/api-keys", "key_revoked")
