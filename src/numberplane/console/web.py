"""What every console page shares: the signed-in user, CSRF, roles, templates and error pages.

A session is a random token in an HttpOnly, SameSite=Lax cookie (Secure when the public URL is
https); ``tenancy.users`` keeps it server-side, so signing out or removing the user ends it on
the next request. Every form carries a CSRF token: the session's own once signed in, and a
double-submit cookie on the sign-in form. A viewer's POST is refused with 403 before any service
is called, whatever the form says.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import FormData

from numberplane.kernel.db import Database
from numberplane.kernel.errors import ErrorInfo, Forbidden, Unauthorized
from numberplane.kernel.settings import Settings
from numberplane.tenancy import users
from numberplane.tenancy.users import SessionUser

PREFIX = "/console"
STATIC_DIR = Path(__file__).with_name("static")
SESSION_COOKIE = "np_session"
PRE_COOKIE = "np_pre"  # the sign-in form's double-submit CSRF cookie

TEMPLATES = Environment(
    loader=PackageLoader("numberplane.console", "templates"),
    autoescape=select_autoescape(default=True),
    auto_reload=False,
    trim_blocks=True,
    lstrip_blocks=True,
)

# Short messages shown after a change (``?notice=``): fixed texts, never echoed from the URL.
NOTICES = {
    "saved": "Saved.",
    "bought": "Bought.",
    "released": "Released.",
    "release_pending": "Release asked; the carrier has not confirmed yet.",
    "pending": "Bought; the carrier has not confirmed yet.",
    "agent_created": "Agent created.",
    "agent_saved": "Saved as a new version.",
    "endpoint_created": "Webhook endpoint created.",
    "resent": "Delivery sent again.",
    "account_added": "Carrier account added (its credentials were checked at the carrier).",
    "verified": "The carrier accepted the credentials.",
    "key_revoked": "API key revoked.",
    "default_set": "Default carrier account set.",
    "test_call": "Test call placed: this is the call it made.",
}

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SignInRequired(Unauthorized):
    code = "sign_in_required"


def db_of(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def secure_cookies(request: Request) -> bool:
    return settings_of(request).public_url.lower().startswith("https://")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def current_user(request: Request) -> SessionUser | None:
    cached = getattr(request.state, "console_user", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    user = await users.session_user(db=db_of(request), token=request.cookies.get(SESSION_COOKIE))
    request.state.console_user = user
    return user


async def require_user(request: Request) -> SessionUser:
    """FastAPI dependency: the signed-in user, or a redirect to the sign-in page."""
    user = await current_user(request)
    if user is None:
        raise SignInRequired("sign in to use the console")
    return user


def check_csrf(form: FormData, expected: str | None) -> None:
    given = form.get("csrf")
    if not expected or not isinstance(given, str) or not hmac.compare_digest(given, expected):
        raise Forbidden(
            "this form has expired or did not come from this console (CSRF check failed); reload the "
            "page and try again",
            code="csrf_failed",
        )


async def change_form(request: Request) -> tuple[SessionUser, FormData]:
    """A form that changes something: signed in, the session's CSRF token, and a role that may change."""
    user = await require_user(request)
    form = await request.form(max_files=1, max_fields=200)
    check_csrf(form, user.csrf_token)
    if not user.can_change:
        raise Forbidden("viewers can look but not change anything", code="viewer_read_only")
    return user, form


def text(form: FormData, name: str, limit: int = 2000) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def see_other(url: str, notice: str | None = None) -> RedirectResponse:
    if notice:
        url += ("&" if "?" in url else "?") + f"notice={notice}"
    return RedirectResponse(url, status_code=303)


def render(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    user: SessionUser | None = getattr(request.state, "console_user", None)
    notice = NOTICES.get(request.query_params.get("notice", ""))
    html = TEMPLATES.get_template(template).render(
        user=user,
        csrf=user.csrf_token if user else "",
        can_change=bool(user and user.can_change),
        notice=notice,
        path=request.url.path,
        prefix=PREFIX,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def pre_session_token(request: Request) -> str:
    """The sign-in form's CSRF value: the browser's pre-session cookie (a new one if absent)."""
    return request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)


def set_pre_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        PRE_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path=PREFIX,
    )


def _same_origin(request: Request, url: str) -> str:
    return url if url.startswith(str(request.base_url).rstrip("/") + PREFIX) else ""


def render_error(request: Request, info: ErrorInfo) -> Response:
    """The console's error shape: a stranger goes to sign in, everyone else gets an HTML page."""
    if info.code == "sign_in_required":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PREFIX}/sign-in?next={quote(target, safe='')}", status_code=303)
    html = TEMPLATES.get_template("error.html").render(
        info=info,
        prefix=PREFIX,
        user=None,
        back=_same_origin(request, request.headers.get("referer", "")),
        request_id=request_id_of(request),
    )
    headers = {**HEADERS, **info.headers}
    return HTMLResponse(html, status_code=info.status, headers=headers)


ERROR_SHAPE = (PREFIX, render_error)
