"""``numberplane carriers ...``: platform-wide accounts and reconcile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

carriers_app = typer.Typer(help="Carrier accounts and reconcile.", no_args_is_help=True)
console = Console(stderr=True)

PHASES = {
    "orders": "settling pending purchases",
    "releases": "finishing releases",
    "carrier": "listing the carrier's numbers",
    "compare": "comparing with our records",
    "unknown": "numbers unknown to Numberplane",
}


def register(app: typer.Typer) -> None:
    app.add_typer(carriers_app, name="carriers")


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
    api_base_url: str | None = typer.Option(None, help="Override the carrier's API base URL."),
    timeout_seconds: float | None = typer.Option(None, help="Per-request timeout at the carrier."),
    check: bool = typer.Option(True, help="Check the credentials at the carrier first."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Add a platform-wide carrier account (org_id NULL) that every org may use."""
    from numberplane.carriers import service
    from numberplane.carriers.schemas import CarrierAccountCreate
    from numberplane.kernel.db import Actor
    from numberplane.kernel.errors import AppError

    try:
        data = CarrierAccountCreate(
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


@carriers_app.command("reconcile")
def reconcile_cmd(
    account: str | None = typer.Option(None, "--account", help="One carrier account id (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON report per account, one per line."),
    max_numbers: int = typer.Option(
        10_000, min=1, max=10_000, help="Numbers per account per run (each side)."
    ),
) -> None:
    """Settle pending purchases and releases, then find and repair drift at the carriers."""
    from numberplane.carriers import reconcile
    from numberplane.kernel.errors import AppError

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}"),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(PHASES.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        async def go() -> Any:
            db = _database()
            try:
                return await reconcile.reconcile_all(
                    db=db, account_id=account, max_numbers=max_numbers, progress=progress
                )
            finally:
                await db.dispose()

        try:
            reports = _run(go())
        except AppError as exc:
            console.print(f"[red]error:[/red] {exc.message}")
            raise typer.Exit(1) from exc

    failed = any(r.errors for r in reports)
    if as_json:
        for report in reports:
            typer.echo(report.model_dump_json())
        raise typer.Exit(1 if failed else 0)
    out = Console(soft_wrap=True)

    def counts(values: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(values.items())) or "none"

    for report in reports:
        if report.carrier == "sandbox" and not (report.drift or report.errors or any(report.orders.values())):
            continue
        out.print(
            f"[bold]{report.carrier}[/bold] account {report.account_id}: "
            f"{report.checked} checked, {report.in_sync} in sync, {len(report.drift)} drift, "
            f"purchases settled: {counts(report.orders)}; releases finished: {counts(report.releases)}"
            + ("" if report.complete else " [yellow](incomplete)[/yellow]")
        )
        for d in report.drift:
            action = "repaired" if d.repaired else d.detail.get("action", "reported")
            out.print(f"  {d.kind:20} {d.phone_number:16} {action}")
        for error in report.errors:
            out.print(f"  [red]error:[/red] {error}")
    raise typer.Exit(1 if failed else 0)
