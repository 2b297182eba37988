"""/v1/carrier-accounts: connect Twilio, Telnyx, SignalWire (and Vonage for routing), pick a default.

Carriers sit below numbers: whether numbers still use an account (which refuses its deletion)
is asked of the function the app passes to ``make_router``; reconciling an account's numbers is
the numbers package's route (``/v1/carrier-accounts/{id}/reconcile``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from numberplane.carriers import service
from numberplane.carriers.schemas import CarrierAccountCreate, CarrierAccountRead
from numberplane.kernel.deps import actor_for, get_db
from numberplane.kernel.pagination import Page
from numberplane.tenancy.auth import Principal, require_principal

_routes = APIRouter(prefix="/v1/carrier-accounts", tags=["carrier accounts"])


@_routes.post(
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


@_routes.get(
    "",
    response_model=Page[CarrierAccountRead],
    summary="The org's carrier accounts and the platform-wide ones",
)
async def list_accounts(
    request: Request, principal: Principal = Depends(require_principal)
) -> Page[CarrierAccountRead]:
    accounts = await service.list_accounts(db=get_db(request), org_id=principal.org_id)
    return Page[CarrierAccountRead](data=accounts, has_more=False)


@_routes.get("/{account_id}", response_model=CarrierAccountRead)
async def get_account(
    account_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> CarrierAccountRead:
    return await service.get_account(db=get_db(request), org_id=principal.org_id, account_id=account_id)


@_routes.post(
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


def make_router(*, account_users: service.AccountUsers) -> APIRouter:
    """Every /v1/carrier-accounts route; ``account_users`` says what still uses an account."""
    router = APIRouter(routes=list(_routes.routes))  # its routes, not a branch: see app.serve_routes

    @router.delete(
        "/v1/carrier-accounts/{account_id}",
        status_code=204,
        tags=["carrier accounts"],
        summary="Forget an account no number uses",
    )
    async def delete_account(
        account_id: str, request: Request, principal: Principal = Depends(require_principal)
    ) -> Response:
        await service.delete_account(
            db=get_db(request),
            actor=actor_for(request, principal),
            account_id=account_id,
            in_use=account_users,
        )
        return Response(status_code=204)

    return router
