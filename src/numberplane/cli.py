"""The ``numberplane`` command. Other tooling scripts against these exact forms.

This module assembles the CLI: its own commands (serve, migrate, orgs, keys, numbers import)
and the domains' command groups, placed explicitly at the end of the module.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from numberplane.carriers import cli as carriers_cli
from numberplane.events import cli as events_cli
from numberplane.kernel.settings import get_settings
from numberplane.numbers import cli as numbers_cli
from numberplane.tenancy import cli as tenancy_cli

app = typer.Typer(help="Numberplane: phone numbers for voice-AI agents.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organisations (tenants).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
numbers_app = typer.Typer(help="Phone numbers.", no_args_is_help=True)
app.add_typer(orgs_app, name="orgs")
app.add_typer(keys_app, name="keys")
app.add_typer(numbers_app, name="numbers")

console = Console(stderr=True)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def database() -> Any:
    from numberplane.kernel.db import Database

    return Database(get_settings().database_url)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, default=str))


def _print_table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Aligned columns on stdout, never cut short (ids must survive a pipe)."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    for line in (headers, *rows):
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=False)).rstrip())


@app.command()
def migrate() -> None:
    """Apply database migrations (NUMBERPLANE_DATABASE_URL)."""
    from numberplane.migrate import upgrade

    upgrade(get_settings().database_url)
    console.print("[green]database is at the latest schema[/green]")


async def _bootstrap_first_org(host: str, port: int) -> None:
    """On the very first start (no org yet), create one and print its key once, with a curl to try;
    while nobody can sign in to the console, create an owner and print their one-time password."""
    import secrets

    from sqlalchemy import func, select

    from numberplane.carriers import service as carriers_service
    from numberplane.kernel.db import Actor
    from numberplane.tenancy import users
    from numberplane.tenancy.models import Org

    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    db = database()
    key = None
    try:
        async with db.session() as session:
            count = await session.scalar(select(func.count()).select_from(Org))
        if not count:
            async with db.uow(Actor.cli()) as uow:
                org, key = await carriers_service.open_org(uow=uow, name="Default")
                await uow.commit()
        owner = None
        if not await users.count_users(db=db):
            async with db.session() as session:
                first_org = await session.scalar(select(Org.id).order_by(Org.created_at, Org.id).limit(1))
            password = secrets.token_urlsafe(12)
            async with db.uow(Actor.cli(first_org)) as uow:
                owner = await users.create_user(
                    uow=uow, org_id=str(first_org), email="owner@localhost", role="owner", password=password
                )
                await uow.commit()
    finally:
        await db.dispose()
    if key is not None:
        console.rule("[bold]First start: an org and an API key were created[/bold]")
        typer.echo(
            f"org_id  {org.id}\nkey_id  {key.key_id}\nsecret  {key.secret}\ntoken   {key.token}", err=True
        )
        console.print("[yellow]The secret is shown only now. Keep it.[/yellow]")
        # Plain echo, not rich: the curl line must stay on one line to be copied.
        typer.echo(
            f"Try:\n  curl -s -H 'Authorization: Bearer {key.token}' "
            f"'http://{shown}:{port}/v1/available-phone-numbers?country=US&area_code=415&limit=3'",
            err=True,
        )
    if owner is not None:
        console.rule("[bold]The console: an owner user was created[/bold]")
        typer.echo(
            f"console   http://{shown}:{port}/console\nemail     {owner.email}\npassword  {password}",
            err=True,
        )
        console.print(
            "[yellow]This password is shown only now. Add people with `numberplane users create`.[/yellow]"
        )
    if key is not None or owner is not None:
        console.rule()


def _public_url_for(host: str, port: int) -> None:
    """The URL numbers' voice webhooks point at follows ``--host``/``--port`` unless it is set;
    an explicit one on another port gets one warning line (fine behind a proxy, wrong otherwise)."""
    import os
    from urllib.parse import urlsplit

    from numberplane.kernel.settings import reset_settings_cache

    explicit = os.environ.get("NUMBERPLANE_PUBLIC_URL")
    if not explicit:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        shown = f"[{shown}]" if ":" in shown else shown
        os.environ["NUMBERPLANE_PUBLIC_URL"] = f"http://{shown}:{port}"  # inherited by worker processes
        reset_settings_cache()
        return
    parts = urlsplit(explicit)
    public_port = parts.port or (443 if parts.scheme == "https" else 80)
    if public_port != port:
        console.print(
            f"[yellow]warning:[/yellow] NUMBERPLANE_PUBLIC_URL is {explicit} (port {public_port}) but the "
            f"server listens on port {port}: carriers will call the public URL (right only behind a proxy "
            f"that forwards it here)",
            soft_wrap=True,
        )


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, help="Port to bind."),
    bootstrap: bool = typer.Option(False, help="Migrate and create a first org and key if none exists."),
    workers: int = typer.Option(
        1, min=1, max=64, help="Server processes (PostgreSQL only: they keep their caches coherent)."
    ),
) -> None:
    """Serve the API, the dialects and the routing endpoints."""
    import uvicorn

    from numberplane.kernel.db import is_sqlite
    from numberplane.kernel.serving import PROTOCOL, serve_workers
    from numberplane.migrate import upgrade

    if workers > 1 and is_sqlite(get_settings().database_url):
        console.print(
            "[red]error:[/red] --workers above 1 needs PostgreSQL (NUMBERPLANE_DATABASE_URL="
            "postgresql+asyncpg://…): SQLite serves one process at a time"
        )
        raise typer.Exit(2)
    _public_url_for(host, port)
    settings = get_settings()
    if settings.call_writer == "auto":  # the workers inherit the choice (they cannot count each other)
        from numberplane.calls.writer import chosen

        mode = "process" if chosen("auto", settings.database_url, workers=workers) else "inline"
        os.environ["NUMBERPLANE_CALL_WRITER"] = mode
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if bootstrap:
        upgrade(settings.database_url)
        run(_bootstrap_first_org(host, port))
    config = {
        "app": "numberplane.app:create_app",
        "factory": True,
        "http": PROTOCOL,  # a loop turn's answers sent together (kernel/serving.py)
        "host": host,
        "port": port,
        "log_level": settings.log_level.lower(),
        "access_log": False,
    }
    if workers > 1 and hasattr(socket, "SO_REUSEPORT"):
        # A listening socket per worker, so the kernel spreads connections evenly over them.
        console.print(f"serving on http://{host}:{port} with {workers} server processes", soft_wrap=True)
        raise typer.Exit(serve_workers(config, host=host, port=port, workers=workers))
    uvicorn.run(**config, workers=workers)  # type: ignore[arg-type]


@orgs_app.command("create")
def orgs_create(
    name: str,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Create an org with its first API key (the secret is printed once)."""
    from numberplane.carriers import service as carriers_service
    from numberplane.kernel.db import Actor

    async def go() -> dict[str, Any]:
        db = database()
        try:
            async with db.uow(Actor.cli()) as uow:
                org, key = await carriers_service.open_org(uow=uow, name=name)
                await uow.commit()
            return {
                "org_id": org.id,
                "name": org.name,
                "key_id": key.key_id,
                "secret": key.secret,
                "token": key.token,
            }
        finally:
            await db.dispose()

    out = run(go())
    if as_json:
        _print_json(out)
    else:
        # The token alone on stdout (TOKEN=$(numberplane orgs create X)); the rest on stderr.
        console.print(
            f"org {out['org_id']} ({out['name']}) created with key {out['key_id']}; token (shown once):"
        )
        typer.echo(out["token"])


@orgs_app.command("list")
def orgs_list(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per org, one per line."),
    limit: int = typer.Option(1000, min=1, max=10_000, help="At most this many orgs."),
) -> None:
    """List the orgs, oldest first."""
    from numberplane.tenancy import service

    async def go() -> list[Any]:
        db = database()
        try:
            return await service.list_orgs(db=db, limit=limit)
        finally:
            await db.dispose()

    orgs = run(go())
    if as_json:
        for org in orgs:
            typer.echo(org.model_dump_json())
        return
    _print_table(
        ("org_id", "name", "created", "default carrier account"),
        [
            (o.id, o.name, o.created_at.isoformat(timespec="seconds"), o.default_carrier_account_id or "")
            for o in orgs
        ],
    )
    console.print(f"{len(orgs)} org(s)")


@keys_app.command("create")
def keys_create(
    org: str = typer.Option(..., "--org", help="The org id."),
    name: str | None = typer.Option(None, help="A label for the key."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Create an API key for an org (the secret is printed once)."""
    from numberplane.kernel.db import Actor
    from numberplane.kernel.errors import AppError
    from numberplane.tenancy import service

    async def go() -> dict[str, Any]:
        db = database()
        try:
            async with db.uow(Actor.cli(org)) as uow:
                key = await service.create_key(uow=uow, org_id=org, name=name)
                await uow.commit()
            return key.model_dump()
        finally:
            await db.dispose()

    try:
        out = run(go())
    except AppError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    if as_json:
        _print_json(out)
    else:
        console.print(f"key {out['key_id']}\ntoken (shown once): {out['token']}")


@keys_app.command("list")
def keys_list(
    org: str = typer.Option(..., "--org", help="The org id."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per key, one per line."),
) -> None:
    """List an org's API keys (ids, names, dates; never a secret)."""
    from numberplane.kernel.errors import AppError
    from numberplane.tenancy import service

    async def go() -> list[Any]:
        db = database()
        try:
            return await service.list_keys(db=db, org_id=org)
        finally:
            await db.dispose()

    try:
        keys = run(go())
    except AppError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    if as_json:
        for key in keys:
            typer.echo(key.model_dump_json())
        return
    _print_table(
        ("key_id", "name", "created", "revoked"),
        [
            (
                key.id,
                key.name or "",
                key.created_at.isoformat(timespec="seconds"),
                key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
            )
            for key in keys
        ],
    )
    console.print(f"{len(keys)} key(s), {sum(1 for k in keys if k.revoked_at is None)} live")


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key; requests with it fail at once."""
    from numberplane.kernel.db import Actor
    from numberplane.kernel.errors import AppError
    from numberplane.tenancy import service

    async def go() -> None:
        db = database()
        try:
            async with db.uow(Actor.cli()) as uow:
                await service.revoke_key(uow=uow, key_id=key_id)
                await uow.commit()
        finally:
            await db.dispose()

    try:
        run(go())
    except AppError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    console.print(f"key {key_id} revoked")


@numbers_app.command("import")
def numbers_import(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="CSV with a phone_number column."
    ),
    org: str = typer.Option(..., "--org", help="The org id."),
    report: Path | None = typer.Option(None, help="Write the per-row report as CSV here (default: stdout)."),
    batch_size: int = typer.Option(5000, min=1, max=100_000, help="Rows per transaction."),
    country: str | None = typer.Option(None, help="Country hint for numbers written nationally."),
) -> None:
    """Import numbers the org already owns from a CSV, with a progress bar and a per-row report."""
    from numberplane.numbers.importer import import_csv

    code = run(
        import_csv(
            file=file, org_id=org, report=report, batch_size=batch_size, country=country, console=console
        )
    )
    raise typer.Exit(code)


# -- the domains' commands, placed here ---------------------------------------------------------


def _periodic_jobs(db: Any, settings: Any) -> list[Any]:
    from numberplane.app import periodic_jobs

    return periodic_jobs(db, settings)


app.add_typer(carriers_cli.carriers_app, name="carriers")
app.add_typer(tenancy_cli.users_app, name="users")
carriers_cli.carriers_app.command("reconcile")(numbers_cli.reconcile)
app.command("worker")(events_cli.worker_command(_periodic_jobs))
