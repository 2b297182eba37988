"""``numberplane users``: the people who sign in to the console (placed by ``cli.py``)."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import typer
from rich.console import Console

from numberplane.kernel.db import Actor, Database
from numberplane.kernel.errors import AppError
from numberplane.kernel.settings import get_settings
from numberplane.tenancy import users

users_app = typer.Typer(help="Console users (email, password, role in one org).", no_args_is_help=True)
console = Console(stderr=True)


def _run(make: Any) -> Any:
    """Run ``make(db)`` against the configured database; an AppError is one red line and exit 1."""

    async def go() -> Any:
        db = Database(get_settings().database_url)
        try:
            return await make(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(go())
    except AppError as exc:
        console.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc


def read_password() -> str:
    """From standard input when it is not a terminal (one line); otherwise prompted twice."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = typer.prompt("Password", hide_input=True)
    second = typer.prompt("Repeat the password", hide_input=True)
    if first != second:
        console.print("[red]error:[/red] the two passwords differ")
        raise typer.Exit(1)
    return str(first)


@users_app.command("create")
def create(
    email: str,
    org: str = typer.Option(..., "--org", help="The org id."),
    role: str = typer.Option("viewer", help="owner, admin or viewer."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Create a user; the password is read from standard input, or prompted for twice."""
    password = read_password()

    async def make(db: Database) -> users.UserRead:
        async with db.uow(Actor.cli(org)) as uow:
            user = await users.create_user(uow=uow, org_id=org, email=email, role=role, password=password)
            await uow.commit()
        return user

    user = _run(make)
    if as_json:
        typer.echo(user.model_dump_json())
    else:
        console.print(f"user {user.email} ({user.role}) created in org {user.org_id}", highlight=False)
        typer.echo(user.id)


@users_app.command("list")
def list_(
    org: str | None = typer.Option(None, "--org", help="Only this org's users."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per user, one per line."),
) -> None:
    """List users (never a password or its hash)."""
    found: list[users.UserRead] = _run(lambda db: users.list_users(db=db, org_id=org))
    if as_json:
        for user in found:
            typer.echo(user.model_dump_json())
        return
    rows = [(u.id, u.email, u.role, u.org_id, u.created_at.isoformat(timespec="seconds")) for u in found]
    headers = ("user_id", "email", "role", "org_id", "created")
    widths = [max(len(c) for c in column) for column in zip(headers, *rows, strict=False)]
    for line in (headers, *rows):
        typer.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)).rstrip())
    console.print(f"{len(found)} user(s)")


@users_app.command("remove")
def remove(user: str = typer.Argument(..., help="The user's email or id.")) -> None:
    """Remove a user; their console sessions end at once."""

    async def make(db: Database) -> users.UserRead:
        async with db.uow(Actor.cli()) as uow:
            removed = await users.remove_user(uow=uow, user=user)
            await uow.commit()
        return removed

    removed = _run(make)
    console.print(f"user {removed.email} removed; their sessions are ended", highlight=False)
