"""``numberplane numbers import``: the encodings a CSV comes in (issue 10, item 11). UTF-8 with or
without a byte-order mark and UTF-16 with one are read; anything else is one line naming the
problem and exit 2, never a traceback."""

from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from numberplane.numbers.importer import UnusableInput, read_rows
from tests.support import AreaCodes

TEXT = "phone_number,name\r\n+1{area}5550100,Café Zoë\r\n+1{area}5550101,Ürümqi desk\r\n"
READABLE: dict[str, Callable[[str], bytes]] = {
    "utf-8": lambda t: t.encode("utf-8"),
    "utf-8-bom": lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),
    "utf-16": lambda t: t.encode("utf-16"),  # with the platform's byte-order mark
    "utf-16-be-bom": lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
    "utf-16-le-bom": lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"),
}
UNREADABLE = {
    "latin-1": (TEXT.encode("latin-1"), "is not valid UTF-8: byte 0xe9 after line 1"),
    "windows-1252": (TEXT.encode("cp1252"), "is not valid UTF-8: byte 0xe9 after line 1"),
    "utf-16-without-bom": (TEXT.encode("utf-16-le"), "looks like UTF-16 without a byte-order mark"),
    "utf-32": (TEXT.encode("utf-32"), "is UTF-32, which is not supported"),
    "truncated-utf-16": (codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le")[:-1], "is not valid UTF-16"),
}


@pytest.mark.parametrize("encoding", list(READABLE))
def test_utf8_and_utf16_with_a_mark_are_read(tmp_path: Path, encoding: str) -> None:
    source = tmp_path / "numbers.csv"
    source.write_bytes(READABLE[encoding](TEXT.format(area="303")))
    rows = read_rows(source)
    assert [(r["phone_number"], r["name"]) for r in rows] == [
        ("+13035550100", "Café Zoë"),
        ("+13035550101", "Ürümqi desk"),
    ]


@pytest.mark.parametrize("encoding", list(UNREADABLE))
def test_other_encodings_are_named(tmp_path: Path, encoding: str) -> None:
    content, words = UNREADABLE[encoding]
    source = tmp_path / "numbers.csv"
    source.write_bytes(content.replace(b"{area}", b"303") if b"{area}" in content else content)
    with pytest.raises(UnusableInput) as refused:
        read_rows(source)
    message = str(refused.value)
    assert message.startswith("numbers.csv ") and words in message and "\n" not in message, message


def cli(*args: str, db_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NUMBERPLANE_DATABASE_URL": db_url, "COLUMNS": "60"}  # narrow: no wrapping
    return subprocess.run(
        [sys.executable, "-m", "numberplane", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_the_command_imports_utf16_and_refuses_latin1_in_one_line(
    db_url: str, area_codes: AreaCodes, tmp_path: Path
) -> None:
    org_id = json.loads(cli("orgs", "create", "Encodings", "--json", db_url=db_url).stdout)["org_id"]
    source = tmp_path / "numbers.csv"
    source.write_bytes(TEXT.format(area=area_codes.take()).encode("utf-16"))
    report = tmp_path / "report.csv"
    done = cli("numbers", "import", str(source), "--org", org_id, "--report", str(report), db_url=db_url)
    assert done.returncode == 0, done.stderr
    assert [line.split(",")[2] for line in report.read_text().splitlines()[1:]] == ["created", "created"]

    latin = tmp_path / "numbers [export].csv"  # brackets: never read as console markup
    latin.write_bytes(TEXT.format(area=area_codes.take()).encode("latin-1"))
    refused = cli("numbers", "import", str(latin), "--org", org_id, db_url=db_url)
    assert refused.returncode == 2, refused.stderr  # before: a UnicodeDecodeError traceback, exit 1
    assert "Traceback" not in refused.stderr
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert lines == [
        "error: numbers [export].csv is not valid UTF-8: byte 0xe9 after line 1 (invalid continuation "
        "byte); save it as UTF-8 (or UTF-16 with a byte-order mark)"
    ]
