"""``numberplane numbers import FILE.csv``: bulk import with a progress bar and a per-row report.

The CSV needs a ``phone_number`` column. Optional columns: name, language, country,
number_type, inbound_agent_id, outbound_agent_id, inbound_webhook_url, carrier_account_id.
Rows go through the same service as the API (``import_numbers``), in batches.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from numberplane.kernel.db import Actor, Database
from numberplane.kernel.settings import get_settings

MAX_ROWS = 1_000_000
_PASSTHROUGH = ("name", "language", "country", "number_type", "inbound_webhook_url", "carrier_account_id")


def row_to_import(raw: dict[str, str]) -> dict[str, Any]:
    """A CSV row as an import row: blank cells are absent; agent id columns become bindings."""
    row: dict[str, Any] = {"phone_number": (raw.get("phone_number") or "").strip()}
    for key in _PASSTHROUGH:
        value = (raw.get(key) or "").strip()
        if value:
            row[key] = value
    for direction in ("inbound", "outbound"):
        agent = (raw.get(f"{direction}_agent_id") or "").strip()
        if agent:
            row[f"{direction}_agents"] = [{"agent_id": agent}]
    return row


async def import_csv(
    *,
    file: Path,
    org_id: str,
    report: Path | None,
    batch_size: int,
    country: str | None,
    console: Console,
) -> int:
    """Returns the process exit code: 0 when every row was imported, 1 when some failed, 2 on bad input."""
    from numberplane.numbers.service import import_numbers
    from numberplane.tenancy.models import Org

    with file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "phone_number" not in reader.fieldnames:
            console.print("[red]error:[/red] the CSV needs a header row with a phone_number column")
            return 2
        rows = []
        for i, raw in enumerate(reader):
            if i >= MAX_ROWS:
                console.print(f"[red]error:[/red] more than {MAX_ROWS:,} rows; split the file")
                return 2
            rows.append(row_to_import(raw))
    db = Database(get_settings().database_url)
    created = failed = 0
    out: TextIO = report.open("w", newline="", encoding="utf-8") if report else sys.stdout
    try:
        async with db.session() as session:
            if await session.get(Org, org_id) is None:
                console.print(f"[red]error:[/red] org {org_id} not found")
                return 2
        writer = csv.writer(out)
        writer.writerow(["row", "phone_number", "status", "id", "error_field", "error"])
        actor = Actor.cli(org_id)
        defaults = {"country": country} if country else None
        with Progress(
            TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        ) as progress:
            task = progress.add_task("import", total=len(rows))
            for start in range(0, len(rows), batch_size):
                batch = rows[start : start + batch_size]
                result = await import_numbers(
                    db=db, actor=actor, rows=batch, defaults=defaults, first_row=start + 1
                )
                for r in result.results:
                    err = r.error or {}
                    writer.writerow(
                        [
                            r.row,
                            r.phone_number or "",
                            r.status,
                            r.id or "",
                            err.get("field", ""),
                            err.get("message", ""),
                        ]
                    )
                created += result.created
                failed += result.failed
                progress.advance(task, len(batch))
    finally:
        if report:
            out.close()
        await db.dispose()
    console.print(f"imported {created:,}, failed {failed:,}" + (f"; report in {report}" if report else ""))
    return 0 if failed == 0 else 1
