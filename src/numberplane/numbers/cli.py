"""CLI commands of the numbers package; ``cli.py`` places them (``carriers reconcile``)."""

from __future__ import annotations

import json
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
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print one JSON object per account (a report, or why it was skipped), one per line.",
    ),
    max_numbers: int = typer.Option(
        10_000, min=1, max=10_000, help="Numbers per account per run (each side)."
    ),
) -> None:
    """Settle pending purchases and releases, then find and repair drift at the carriers."""
    from numberplane.kernel.errors import AppError
    from numberplane.numbers.reconcile import idle_sandbox_accounts, reconcile_all

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
                reports = await reconcile_all(
                    db=db, account_id=account, max_numbers=max_numbers, progress=progress
                )
                skipped = [] if account else await idle_sandbox_accounts(db=db)
                return reports, skipped
            finally:
                await db.dispose()

        try:
            reports, skipped = _run(go())
        except AppError as exc:
            console.print(f"[red]error:[/red] {exc.message}")
            raise typer.Exit(1) from exc

    failed = any(r.errors for r in reports)
    why_skipped = "idle sandbox account: no numbers and no purchases in flight, nothing to reconcile"
    if as_json:
        for report in reports:
            typer.echo(report.model_dump_json())
        for account_id in skipped:
            typer.echo(
                json.dumps(
                    {
                        "object": "reconcile_skipped",
                        "account_id": account_id,
                        "carrier": "sandbox",
                        "reason": why_skipped,
                    }
                )
            )
        raise typer.Exit(1 if failed else 0)
    out = Console(soft_wrap=True)

    def counts(values: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(values.items())) or "none"

    for report in reports:
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
    if skipped:
        out.print(f"skipped {len(skipped)} idle sandbox account(s): no numbers and no purchases in flight")
    drift = [d for r in reports for d in r.drift]
    out.print(
        f"reconciled {len(reports)} account(s): {sum(r.checked for r in reports)} numbers checked, "
        f"{sum(r.in_sync for r in reports)} in sync, {len(drift)} drift "
        f"({sum(1 for d in drift if d.repaired)} repaired), "
        f"{sum(sum(r.orders.values()) for r in reports)} purchase(s) settled, "
        f"{sum(sum(r.releases.values()) for r in reports)} release(s) finished"
        + (f", {sum(len(r.errors) for r in reports)} error(s)" if failed else "")
    )
    raise typer.Exit(1 if failed else 0)
