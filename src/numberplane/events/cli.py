"""``numberplane worker``: webhook delivery and the billing clock, in the foreground."""

from __future__ import annotations

import asyncio
import logging
import signal

import typer

from numberplane.kernel.settings import get_settings


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        once: bool = typer.Option(False, help="Deliver what is due now, then exit."),
        batch_size: int | None = typer.Option(None, min=1, max=10_000, help="Rows per step."),
        poll_seconds: float | None = typer.Option(None, min=0.01, help="Idle poll interval."),
    ) -> None:
        """Deliver webhooks (Standard Webhooks signatures, retries) and roll the billing clock.

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

        async def main() -> None:
            db = Database(settings.database_url)
            runner = Worker(db, config)
            # Wake at once when another process commits events (the worker polls anyway).
            listener = ChangeListener(db)
            try:
                if once:
                    await runner.renew_due()
                    await runner.run_until_idle()
                    return
                listener.start()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.add_signal_handler(sig, runner.stop)
                await runner.run()
            finally:
                await listener.stop()
                await runner.aclose()
                await db.dispose()

        asyncio.run(main())
