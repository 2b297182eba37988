"""The console's routes, gathered for ``app.py`` (which mounts them and the static files)."""

from __future__ import annotations

from fastapi import APIRouter

from numberplane.console import accounts, admin, auth, calls, imports, numbers
from numberplane.console.web import ERROR_SHAPE, PREFIX, STATIC_DIR

__all__ = ["ERROR_SHAPE", "PREFIX", "STATIC_DIR", "router"]

# The parts' routes themselves, not branches (see app.serve_routes).
router = APIRouter(
    routes=[
        route
        for part in (auth.router, numbers.router, calls.router, admin.router, accounts.router, imports.router)
        for route in part.routes
    ]
)
