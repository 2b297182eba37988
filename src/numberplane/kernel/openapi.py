"""OpenAPI links: from the operation that creates a resource to those that read, change or
delete it, so a client (or schemathesis's stateful phase) can follow a created id.

``add_links`` adds them to a finished document in two ways:

- by shape: a ``POST`` on a collection path ``/things`` links to every operation on
  ``/things/{param}`` (and below it), passing the created resource's id (where the id is in
  the response, by path prefix: ``id_pointers``, default ``/id``);
- by table: ``extra`` names links a path pattern cannot find (a vendor whose create and get
  paths differ, or whose id is the phone number).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_PARAM = re.compile(r"^\{([^}]+)\}$")
_METHODS = ("get", "put", "post", "patch", "delete")
# (source method, source path, target path, {parameter: runtime expression}); a parameter may
# be written "query.name" for a query parameter.
Link = tuple[str, str, str, Mapping[str, str]]


def _op_id(op: Mapping[str, Any], method: str, path: str) -> str:
    return str(op.get("operationId") or f"{method}_{path}")


def _success(op: dict[str, Any]) -> dict[str, Any] | None:
    for code in ("201", "200"):
        if code in op.get("responses", {}):
            response: dict[str, Any] = op["responses"][code]
            return response
    return None


def _link(target_op: Mapping[str, Any], method: str, path: str, params: Mapping[str, str]) -> dict[str, Any]:
    parameters = {}
    for name, expression in params.items():
        where, _, bare = name.rpartition(".")
        parameters[f"{where}.{bare}" if where else f"path.{bare}"] = expression
    return {"operationId": _op_id(target_op, method, path), "parameters": parameters}


def add_links(
    schema: dict[str, Any], *, id_pointers: Mapping[str, str] | None = None, extra: Iterable[Link] = ()
) -> dict[str, Any]:
    """``schema`` with links added (in place; returned for convenience)."""
    paths: dict[str, dict[str, Any]] = schema.get("paths", {})
    pointers = sorted((id_pointers or {}).items(), key=lambda item: len(item[0]), reverse=True)
    for source, ops in paths.items():
        create = ops.get("post")
        response = _success(create) if create else None
        if response is None:
            continue
        pointer = next((p for prefix, p in pointers if source.startswith(prefix)), "/id")
        links = response.setdefault("links", {})
        for target, target_ops in paths.items():
            rest = target[len(source) :] if target.startswith(source + "/") else ""
            segments = rest.strip("/").split("/") if rest else []
            if not segments or not (match := _PARAM.match(segments[0])):
                continue
            if any("{" in s for s in segments[1:]):
                continue
            for method in _METHODS:
                if method in target_ops:
                    op = target_ops[method]
                    name = f"{method.upper()} {target}"
                    links[name] = _link(op, method, target, {match.group(1): f"$response.body#{pointer}"})
        if not links:
            response.pop("links")
    for method, source, target, params in extra:
        source_op = paths.get(source, {}).get(method.lower())
        response = _success(source_op) if source_op else None
        if response is None:
            continue
        for target_method in _METHODS:
            op = paths.get(target, {}).get(target_method)
            if op is not None:
                name = f"{target_method.upper()} {target}"
                response.setdefault("links", {})[name] = _link(op, target_method, target, params)
    return schema
