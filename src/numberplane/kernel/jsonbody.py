"""Why a request body is not acceptable JSON, with where: one ``invalid_json`` answer for all.

FastAPI reports bad syntax as a validation error located at a bare character offset (which
reads as a field named ``[13]``), and bad UTF-8 or nesting too deep for the parser as a 400 with
no detail. ``errors.install`` turns all three into one ``invalid_json`` error whose message gives
the line, column and character position.
"""

from __future__ import annotations

import json
import re

# Where ``kernel.inputs.TextGuard`` keeps the body it read (the request's state).
BODY_KEY = "numberplane.body"
MAX_DEPTH = 200
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def problem(body: bytes) -> str | None:
    """What is wrong with ``body`` as JSON, with its position; None if nothing is."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the body is not UTF-8: byte 0x{body[exc.start]:02x} at position {exc.start}"
    deep_at = too_deep(text)
    if deep_at is not None:
        line, column = line_column(text, deep_at)
        return (
            f"the body is nested deeper than {MAX_DEPTH} levels "
            f"at line {line} column {column} (char {deep_at})"
        )
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return at(exc.msg, text, exc.pos)
    except (ValueError, RecursionError) as exc:
        return f"the body is not valid JSON: {exc}"
    return None


def at(reason: str, text: str, pos: int) -> str:
    line, column = line_column(text, pos)
    return f"the body is not valid JSON: {reason} at line {line} column {column} (char {pos})"


def too_deep(text: str) -> int | None:
    """Where nesting first passes ``MAX_DEPTH`` (brackets inside strings do not count), or None."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return None
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_DEPTH:
                return match.start()
        elif token in ("]", "}"):
            depth -= 1
    return None


def line_column(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1
