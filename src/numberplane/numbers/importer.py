"""``numberplane numbers import FILE.csv``: bulk import with a progress bar and a per-row report.

The CSV needs a ``phone_number`` column. Optional columns: name, language, country,
number_type, inbound_agent_id, outbound_agent_id, inbound_webhook_url, carrier_account_id.
Rows go through the same service as the API (``import_numbers``), in batches.

Text encodings: UTF-8 (with or without a byte-order mark) and UTF-16 with its byte-order mark
(what spreadsheet programs write as "Unicode text"). Anything else (Latin-1, Windows-1252,
UTF-16 without a mark, UTF-32) is unusable input: one line naming the problem and where, exit 2.
"""

from __future__ import annotations

import codecs
import csv
import sys
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from numberplane.kernel.db import Actor, Database
from numberplane.kernel.settings import get_settings

MAX_ROWS = 1_000_000
_PASSTHROUGH = ("name", "language", "country", "number_type", "inbound_webhook_url", "carrier_account_id")


SAVE_AS = "save it as UTF-8 (or UTF-16 with a byte-order mark)"


class UnusableInput(ValueError):
    """The file cannot be read as a CSV of numbers; the message is the one line to show."""


def encoding_of(file: Path) -> str:
    """The text encoding to read ``file`` with, judged by its first bytes (its byte-order mark)."""
    with file.open("rb") as raw:
        head = raw.read(4096)
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):  # before UTF-16: FF FE 00 00
        raise UnusableInput(f"{file.name} is UTF-32, which is not supported; {SAVE_AS}")
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        raise UnusableInput(
            f"{file.name} holds NUL bytes: it looks like UTF-16 without a byte-order mark; {SAVE_AS}"
        )
    return "utf-8"


def read_rows(file: Path) -> list[dict[str, Any]]:
    """Every row of ``file`` as an import row. Raises UnusableInput."""
    encoding = encoding_of(file)
    rows: list[dict[str, Any]] = []
    line = 1
    try:
        with file.open(newline="", encoding=encoding, errors="strict") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "phone_number" not in reader.fieldnames:
                raise UnusableInput("the CSV needs a header row with a phone_number column")
            for i, raw in enumerate(reader):
                line = reader.line_num
                if i >= MAX_ROWS:
                    raise UnusableInput(f"more than {MAX_ROWS:,} rows; split the file")
                rows.append(row_to_import(raw))
    except UnicodeDecodeError as exc:
        name = "UTF-16" if encoding == "utf-16" else "UTF-8"
        byte = exc.object[exc.start : exc.start + 1].hex() if isinstance(exc.object, bytes) else "?"
        raise UnusableInput(
            f"{file.name} is not valid {name}: byte 0x{byte} after line {line} ({exc.reason}); {SAVE_AS}"
        ) from exc
    except csv.Error as exc:
        raise UnusableInput(f"{file.name} is not a readable CSV after line {line}: {exc}") from exc
    return rows


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

    try:
        rows = read_rows(file)
    except UnusableInput as exc:  # one line (no wrapping), the file name never read as markup
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 2
    db = Database(get_settings().database_url)
    created = unchanged = failed = 0
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
                unchanged += result.unchanged
                failed += result.failed
                progress.advance(task, len(batch))
    finally:
        if report:
            out.close()
        await db.dispose()
    already = f", unchanged {unchanged:,} (already imported with these settings)" if unchanged else ""
    console.print(
        f"imported {created:,}{already}, failed {failed:,}" + (f"; report in {report}" if report else "")
    )
    return 0 if failed == 0 else 1
