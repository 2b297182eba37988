"""Signing in and out of the console."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from numberplane.console.web import (
    PRE_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    check_csrf,
    client_address,
    current_user,
    db_of,
    pre_session_token,
    render,
    require_user,
    secure_cookies,
    see_other,
    set_pre_cookie,
    text,
)
from numberplane.kernel.errors import AppError
from numberplane.tenancy import users

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _safe_next(value: str) -> str:
    """Only a console path: never another site (an open redirect) nor a protocol-relative URL."""
    if value.startswith(PREFIX) and not value.startswith("//") and "\\" not in value:
        return value
    return PREFIX


def _sign_in_page(
    request: Request, *, status: int = 200, error: str = "", email: str = "", next_url: str | None = None
) -> Response:
    token = pre_session_token(request)
    response = render(
        request,
        "sign_in.html",
        status=status,
        pre_csrf=token,
        next=_safe_next(next_url if next_url is not None else request.query_params.get("next", "")),
        error=error,
        email=email,
    )
    set_pre_cookie(request, response, token)
    return response


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    if await current_user(request) is not None:
        return see_other(PREFIX)
    return _sign_in_page(request)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=10)
    check_csrf(form, request.cookies.get(PRE_COOKIE))  # double submit: the form and the cookie agree
    email = text(form, "email", 254)
    try:
        signed = await users.sign_in(
            db=db_of(request),
            email=email,
            password=str(form.get("password") or ""),
            address=client_address(request),
        )
    except AppError as exc:
        if exc.status not in (401, 429, 422):
            raise
        page = _sign_in_page(
            request, status=exc.status, error=exc.message, email=email, next_url=text(form, "next", 500)
        )
        page.headers.update(exc.headers)
        return page
    response = see_other(_safe_next(text(form, "next", 500)))
    response.set_cookie(
        SESSION_COOKIE,
        signed.token,
        max_age=int(users.SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path=PREFIX,
    )
    response.delete_cookie(PRE_COOKIE, path=PREFIX)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    user = await require_user(request)
    form = await request.form(max_files=0, max_fields=10)
    check_csrf(form, user.csrf_token)
    await users.sign_out(db=db_of(request), token=request.cookies.get(SESSION_COOKIE, ""), user=user)
    response = see_other(f"{PREFIX}/sign-in")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX, httponly=True, samesite="lax")
    return response
