"""Import from the console: upload a CSV, watch it go, download the per-row report.

The upload is parsed by the same reader as ``numberplane numbers import`` and imported in
batches through ``numbers.service.import_numbers`` (the /v1 import), as the signed-in person,
by a task of this server process. Its progress and report live in that process's memory (the
last ``KEEP`` imports); with several server processes, the page that started an import is the
one that follows it (see README).
"""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from numberplane.console.web import (
    HEADERS,
    PREFIX,
    change_form,
    db_of,
    render,
    request_id_of,
    require_user,
    see_other,
)
from numberplane.kernel.db import Actor, Database
from numberplane.kernel.errors import NotFound, ValidationFailed
from numberplane.numbers import service as numbers_service
from numberplane.numbers.importer import UnusableInput, read_rows
from numberplane.numbers.schemas import MAX_IMPORT_ROWS
from numberplane.tenancy.users import SessionUser

log_name = "numberplane.console.imports"
router = APIRouter(prefix=PREFIX, include_in_schema=False)
BATCH = 1000
KEEP = 20
REPORT_HEADER = ("row", "phone_number", "status", "id", "error_field", "error")


@dataclass
class ImportJob:
    id: str
    org_id: str
    file_name: str
    total: int
    done: int = 0
    created: int = 0
    failed: int = 0
    finished: bool = False
    error: str | None = None
    report: list[tuple[Any, ...]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def status(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "total": self.total,
            "done": self.done,
            "created": self.created,
            "failed": self.failed,
            "finished": self.finished,
            "error": self.error,
        }


def _jobs(request: Request) -> dict[str, ImportJob]:
    jobs: dict[str, ImportJob] | None = getattr(request.app.state, "console_imports", None)
    if jobs is None:
        jobs = request.app.state.console_imports = {}
    return jobs


def _job(request: Request, user: SessionUser, job_id: str) -> ImportJob:
    job = _jobs(request).get(job_id[:64])
    if job is None or job.org_id != user.org_id:
        raise NotFound(f"import {job_id} not found (imports are kept while this server runs)")
    return job


async def _run(job: ImportJob, db: Database, actor: Actor, rows: list[dict[str, Any]]) -> None:
    try:
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            result = await numbers_service.import_numbers(db=db, actor=actor, rows=batch, first_row=start + 1)
            for r in result.results:
                err = r.error or {}
                job.report.append(
                    (
                        r.row,
                        r.phone_number or "",
                        r.status,
                        r.id or "",
                        err.get("field", ""),
                        err.get("message", ""),
                    )
                )
            job.created += result.created
            job.failed += result.failed
            job.done += len(batch)
    except Exception as exc:  # the page says so; the rows imported so far stay imported
        job.error = f"the import stopped after {job.done:,} rows: {exc.__class__.__name__}"
        raise
    finally:
        job.finished = True


@router.get("/import")
async def import_page(request: Request, user: SessionUser = Depends(require_user)) -> Response:
    jobs = [j for j in reversed(_jobs(request).values()) if j.org_id == user.org_id]
    return render(request, "import.html", jobs=jobs, max_rows=MAX_IMPORT_ROWS)


@router.post("/import")
async def start_import(request: Request) -> Response:
    user, form = await change_form(request)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise ValidationFailed.field("file", "choose a CSV file to upload")
    data = await upload.read()
    name = Path(upload.filename).name[:200]

    def parse() -> list[dict[str, Any]]:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / (name or "upload.csv")
            path.write_bytes(data)
            return read_rows(path)

    try:
        rows = await asyncio.to_thread(parse)
    except UnusableInput as exc:
        raise ValidationFailed.field("file", str(exc)) from exc
    if not rows:
        raise ValidationFailed.field("file", "the CSV has a header but no rows")
    if len(rows) > MAX_IMPORT_ROWS:
        raise ValidationFailed.field("file", f"more than {MAX_IMPORT_ROWS:,} rows; split the file")
    jobs = _jobs(request)
    for old in [j for j in jobs.values() if j.finished][: max(0, len(jobs) - KEEP + 1)]:
        del jobs[old.id]
    job = ImportJob(id=secrets.token_urlsafe(12), org_id=user.org_id, file_name=name, total=len(rows))
    jobs[job.id] = job
    job.task = asyncio.create_task(_run(job, db_of(request), user.actor(request_id_of(request)), rows))
    return see_other(f"{PREFIX}/import/{job.id}")


@router.get("/import/{job_id}")
async def job_page(job_id: str, request: Request, user: SessionUser = Depends(require_user)) -> Response:
    job = _job(request, user, job_id)
    return render(
        request, "import_job.html", job=job, failures=[r for r in job.report if r[2] == "failed"][:50]
    )


@router.get("/import/{job_id}/status")
async def job_status(job_id: str, request: Request, user: SessionUser = Depends(require_user)) -> Response:
    return JSONResponse(_job(request, user, job_id).status(), headers={"Cache-Control": "no-store"})


@router.get("/import/{job_id}/report.csv")
async def job_report(job_id: str, request: Request, user: SessionUser = Depends(require_user)) -> Response:
    job = _job(request, user, job_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(REPORT_HEADER)
    writer.writerows(job.report)
    headers = {**HEADERS, "Content-Disposition": f'attachment; filename="import-{job.id}-report.csv"'}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)
