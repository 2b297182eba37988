"""/v1/carrier-accounts: connect Twilio, Telnyx, SignalWire (and Vonage for routing), pick a default,
and reconcile Numberplane's records with what the carrier holds."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response

from numberplane.carriers import reconcile, service
from numberplane.carriers.schemas import CarrierAccountCreate, CarrierAccountRead, ReconcileReport
from numberplane.kernel.deps import actor_for, get_db
from numberplane.kernel.errors import Forbidden
from numberplane.kernel.pagination import Page
from numberplane.tenancy.auth import Principal, require_principal

router = APIRouter(prefix="/v1/carrier-accounts", tags=["carrier accounts"])


@router.post(
    "",
    status_code=201,
    response_model=CarrierAccountRead,
    summary="Connect a carrier account (the credentials are checked at the carrier first)",
    responses={
        422: {"description": "A required credential is missing or malformed"},
        424: {"description": "The carrier rejected the credentials or could not be reached"},
    },
)
async def create_account(
    body: CarrierAccountCreate, request: Request, principal: Principal = Depends(require_principal)
) -> CarrierAccountRead:
    return await service.create_account(
        db=get_db(request), actor=actor_for(request, principal), org_id=principal.org_id, data=body
    )


@router.get(
    "",
    response_model=Page[CarrierAccountRead],
    summary="The org's carrier accounts and the platform-wide ones",
)
async def list_accounts(
    request: Request, principal: Principal = Depends(require_principal)
) -> Page[CarrierAccountRead]:
    accounts = await service.list_accounts(db=get_db(request), org_id=principal.org_id)
    return Page[CarrierAccountRead](data=accounts, has_more=False)


@router.get("/{account_id}", response_model=CarrierAccountRead)
async def get_account(
    account_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> CarrierAccountRead:
    return await service.get_account(db=get_db(request), org_id=principal.org_id, account_id=account_id)


@router.delete("/{account_id}", status_code=204, summary="Forget an account no number uses")
async def delete_account(
    account_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> Response:
    await service.delete_account(
        db=get_db(request), actor=actor_for(request, principal), account_id=account_id
    )
    return Response(status_code=204)


@router.post(
    "/{account_id}/default",
    response_model=CarrierAccountRead,
    summary="Make this the org's default account for buying",
)
async def set_default(
    account_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> CarrierAccountRead:
    return await service.set_default(
        db=get_db(request), actor=actor_for(request, principal), account_id=account_id
    )


@router.post(
    "/{account_id}/reconcile",
    response_model=ReconcileReport,
    summary="Settle pending purchases and releases, then find and repair drift at the carrier",
)
async def reconcile_account(
    account_id: str,
    request: Request,
    max_numbers: int = Query(reconcile.MAX_NUMBERS, ge=1, le=reconcile.MAX_NUMBERS),
    principal: Principal = Depends(require_principal),
) -> ReconcileReport:
    db = get_db(request)
    async with db.session() as session:
        account = await service.visible_account(session, org_id=principal.org_id, account_id=account_id)
    if account.org_id is None:
        # A platform account holds every org's numbers: only the operator reconciles it.
        raise Forbidden(
            "platform-wide accounts are reconciled by the operator (numberplane carriers reconcile)",
            code="platform_account",
        )
    return await reconcile.reconcile_account(
        db=db, account_id=account.id, actor=actor_for(request, principal), max_numbers=max_numbers
    )
