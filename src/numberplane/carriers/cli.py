"""``numberplane carriers ...``: platform-wide carrier accounts (``reconcile`` is numbers', added by
the CLI's assembler)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

carriers_app = typer.Typer(help="Carrier accounts and reconcile.", no_args_is_help=True)
console = Console(stderr=True)


def _database() -> Any:
    from numberplane.kernel.db import Database
    from numberplane.kernel.settings import get_settings

    return Database(get_settings().database_url)


def _run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


def _credentials(pairs: list[str], file: Path | None) -> dict[str, str]:
    creds: dict[str, str] = {}
    if file is not None:
        loaded = json.loads(file.read_text())
        if not isinstance(loaded, dict):
            raise typer.BadParameter(
                "the credentials file must hold one JSON object", param_hint="--credentials-file"
            )
        creds.update({str(k): str(v) for k, v in loaded.items()})
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set")
        if value == "-":
            value = typer.prompt(key, hide_input=True)
        creds[key.strip()] = value
    return creds


@carriers_app.command("add-platform")
def add_platform(
    carrier: str = typer.Option(..., help="twilio, telnyx, signalwire or vonage."),
    name: str = typer.Option(..., help="A label for the account."),
    set_: list[str] = typer.Option(
        [], "--set", help="A credential as KEY=VALUE (repeatable). VALUE '-' prompts without echo."
    ),
    credentials_file: Path | None = typer.Option(
        None,
        exists=True,
        dir_okay=False,
        readable=True,
        help="A JSON object of credentials (keeps secrets off argv).",
    ),
    api_base_url: str | None = typer.Option(
        None, help="This account's API base URL (a regional edge, a proxy); default: the carrier's."
    ),
    timeout_seconds: float | None = typer.Option(None, help="Per-request timeout at the carrier."),
    check: bool = typer.Option(True, help="Check the credentials at the carrier first."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Add a platform-wide carrier account (org_id NULL) that every org may use."""
    from numberplane.carriers import service
    from numberplane.carriers.schemas import PlatformAccountCreate
    from numberplane.kernel.db import Actor
    from numberplane.kernel.errors import AppError

    try:
        data = PlatformAccountCreate(
            carrier=carrier,  # type: ignore[arg-type]
            name=name,
            credentials=_credentials(set_, credentials_file),
            api_base_url=api_base_url,
            timeout_seconds=timeout_seconds,
        )
    except ValidationError as exc:
        for err in exc.errors():
            console.print(f"[red]error:[/red] {str(err.get('msg', '')).removeprefix('Value error, ')}")
        raise typer.Exit(2) from exc

    async def go() -> Any:
        db = _database()
        try:
            return await service.create_account(db=db, actor=Actor.cli(), org_id=None, data=data, check=check)
        finally:
            await db.dispose()

    try:
        read = _run(go())
    except AppError as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(read.model_dump_json())
        return
    console.print(f"platform {read.carrier} account [bold]{read.id}[/bold] added ({read.name})")
    for warning in read.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")


@carriers_app.command("list-platform")
def list_platform(as_json: bool = typer.Option(False, "--json", help="Print JSON lines.")) -> None:
    """List the platform-wide carrier accounts (never their secrets)."""
    from numberplane.carriers import service

    async def go() -> Any:
        db = _database()
        try:
            return await service.list_platform_accounts(db=db)
        finally:
            await db.dispose()

    accounts = _run(go())
    if as_json:
        for account in accounts:
            typer.echo(account.model_dump_json())
        return
    table = Table("id", "carrier", "name", "api_base_url", "secrets set")
    for a in accounts:
        table.add_row(
            a.id, a.carrier, a.name, str(a.config.get("api_base_url", "")), ", ".join(a.secrets_set)
        )
    Console(soft_wrap=True).print(table)
