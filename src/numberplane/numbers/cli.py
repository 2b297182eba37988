"""CLI commands of the numbers package; ``cli.py`` places them (``carriers reconcile``)."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

console = Console(stderr=True)

PHASES = {
    "orders": "settling pending purchases",
    "releases": "finishing releases",
    "carrier": "listing the carrier's numbers",
    "compare": "comparing with our records",
    "unknown": "numbers unknown to Numberplane",
}


def _database() -> Any:
    from numberplane.kernel.db import Database
    from numberplane.kernel.settings import get_settings

    return Database(get_settings().database_url)


def _run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


def reconcile(
    account: str | None = typer.Option(None, "--account", help="One carrier account id (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON report per account, one per line."),
    max_numbers: int = typer.Option(
        10_000, min=1, max=10_000, help="Numbers per account per run (each side)."
    ),
) -> None:
    """Settle pending purchases and releases, then find and repair drift at the carriers."""
    from numberplane.kernel.errors import AppError
    from numberplane.numbers.reconcile import reconcile_all

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
                return await reconcile_all(
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
