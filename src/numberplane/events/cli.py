"""``numberplane worker``: webhook delivery and the periodic jobs, in the foreground.

The command is built by ``worker_command(jobs_for)``: the CLI's assembler says which periodic
jobs (the billing clock, retention) a worker process runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Callable
from typing import Any

import typer

from numberplane.kernel.settings import Settings, get_settings

JobsFor = Callable[[Any, Settings], list[Any]]


def describe(summary: dict[str, Any]) -> str:
    """``worker --once`` in words: what was delivered, retried, given up, left for later, and
    what each periodic job did."""
    d = summary["deliveries"]
    lines = [
        f"events fanned out: {d['fanned_out']}; deliveries: {d['delivered']} delivered, "
        f"{d['retrying']} failed and will be retried, {d['failed']} given up"
        + (f", {d['lease_lost']} taken over by another worker" if d["lease_lost"] else "")
    ]
    waiting = summary["waiting"]
    if waiting["pending"]:
        lines.append(
            f"still waiting: {waiting['pending']} deliveries "
            f"(not due yet; the next at {waiting['next_attempt_at']})"
        )
    else:
        lines.append("still waiting: none")
    for name, result in summary["jobs"].items():
        lines.append(f"{name}: {result}")
    return "\n".join(lines)


def worker_command(jobs_for: JobsFor) -> Callable[..., None]:
    """The ``worker`` command, running the jobs ``jobs_for(db, settings)`` returns."""

    def worker(
        once: bool = typer.Option(False, help="Deliver what is due now, run every job once, then exit."),
        as_json: bool = typer.Option(False, "--json", help="With --once: print the summary as JSON."),
        batch_size: int | None = typer.Option(None, min=1, max=10_000, help="Rows per step."),
        poll_seconds: float | None = typer.Option(None, min=0.01, help="Idle poll interval."),
    ) -> None:
        """Deliver webhooks (Standard Webhooks signatures, retries) and run the periodic jobs
        (the billing clock).

        Run as many as you like against PostgreSQL; with SQLite, `numberplane serve` already runs
        one in-process (NUMBERPLANE_RUN_WORKER_IN_PROCESS). Stops cleanly on SIGTERM or SIGINT.
        """
        from numberplane.events.worker import Worker, WorkerConfig
        from numberplane.kernel.changes import ChangeListener
        from numberplane.kernel.db import Database

        settings = get_settings()
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
        overrides: dict[str, object] = {}
        if batch_size is not None:
            overrides["batch_size"] = batch_size
        if poll_seconds is not None:
            overrides["poll"] = poll_seconds
        try:
            config = WorkerConfig.from_settings(settings, **overrides)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc

        async def main() -> dict[str, Any] | None:
            db = Database(settings.database_url)
            runner = Worker(db, config, jobs=jobs_for(db, settings))
            # Wake at once when another process commits events (the worker polls anyway).
            listener = ChangeListener(db)
            try:
                if once:
                    jobs = await runner.run_due_jobs(force=True)
                    stats = await runner.run_until_idle()
                    return {
                        "deliveries": stats.as_dict(),
                        "waiting": await runner.waiting(),
                        "jobs": {
                            k: (f"error: {v}" if isinstance(v, Exception) else v) for k, v in jobs.items()
                        },
                    }
                listener.start()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, runner.stop)
                await runner.run()
                return None
            finally:
                await listener.stop()
                await runner.aclose()
                await db.dispose()

        summary = asyncio.run(main())
        if summary is None:
            return
        if as_json:
            typer.echo(json.dumps(summary, default=str))
        else:
            typer.echo(describe(summary))
        failed_jobs = any(str(v).startswith("error:") for v in summary["jobs"].values())
        raise typer.Exit(1 if failed_jobs else 0)

    return worker
