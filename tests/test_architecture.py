"""The layering in docs/ARCHITECTURE.md, held by reading every module's imports.

A package may import the kernel and the packages in layers below its own, never one beside or
above it; the kernel imports no domain; only app.py and cli.py (the assemblers) see everything.
Imports inside functions count the same as those at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "numberplane"
MAX_LINES = 600

# Bottom to top. Packages on one line are siblings: neither imports the other.
LAYERS: list[set[str]] = [
    {"kernel"},
    {"tenancy"},
    {"events", "carriers"},
    {"agents"},
    {"numbers"},
    {"calls"},
    {"routing"},
    {"dialects", "console"},
    {"app", "cli", "models", "migrate", "__main__", "migrations"},
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str | None:
    """The layering unit of ``numberplane.x.y``: its package (or top-level module)."""
    parts = module.split(".")
    if parts[0] != "numberplane":
        return None
    if len(parts) == 1:
        return "kernel"  # the root package holds only __version__
    return parts[1]


Module = tuple[str, str, str, bool]  # (label, dotted name, source, is a package's __init__)


def _modules() -> list[Module]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out.append((str(path.relative_to(SRC)), name, path.read_text(), path.name == "__init__.py"))
    return out


def _imports(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    package = module if is_package else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "numberplane":  # ``from numberplane import app``: the names are modules
                found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
            else:
                found.append((node.lineno, target))
    return found


def _violations(modules: list[Module]) -> list[str]:
    out = []
    for label, module, source, is_package in modules:
        unit = _unit(module)
        assert unit in LAYER_OF, f"{module}: package {unit!r} has no layer in LAYERS"
        for line, target in _imports(source, module, is_package):
            other = _unit(target)
            if other is None or other == unit or other not in LAYER_OF:
                continue
            if LAYER_OF[other] >= LAYER_OF[unit] and unit not in LAYERS[-1]:
                out.append(f"{label}:{line} ({unit}) imports {target} ({other})")
    return out


def test_every_import_points_down_the_layers() -> None:
    assert _violations(_modules()) == []


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        # The rules, spelled out (the layers above imply them).
        *[
            (p, q)
            for p in ("numbers", "carriers", "agents", "tenancy", "events")
            for q in ("routing", "dialects", "app")
        ],
        ("dialects", "carriers"),
        ("carriers", "routing"),
        ("carriers", "dialects"),
        ("routing", "dialects"),
        ("routing", "app"),
        ("kernel", "tenancy"),
        ("kernel", "numbers"),
    ],
)
def test_named_rules(lower: str, higher: str) -> None:
    offending = [
        f"{label}:{line} imports {target}"
        for label, module, source, is_package in _modules()
        if _unit(module) == lower
        for line, target in _imports(source, module, is_package)
        if _unit(target) == higher
    ]
    assert offending == []


def test_no_module_is_over_600_lines() -> None:
    long = {
        label: n
        for label, module, source, _ in _modules()
        if ".migrations" not in module and (n := len(source.splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_checker_sees_violations() -> None:
    """The checker itself is tested: upward, sideways and relative imports are all found."""
    probe = [
        (
            "carriers/probe.py",
            "numberplane.carriers.probe",
            "def f():\n    from numberplane.routing import x\n",
            False,
        ),
        ("events/probe.py", "numberplane.events.probe", "import numberplane.carriers.base\n", False),
        ("kernel/probe.py", "numberplane.kernel.probe", "from ..numbers import service\n", False),
        ("numbers/ok.py", "numberplane.numbers.ok", "from numberplane.carriers import base\n", False),
    ]
    found = _violations(probe)
    assert len(found) == 3
    assert found[0].startswith("carriers/probe.py:2 (carriers) imports numberplane.routing")
    assert found[1].startswith("events/probe.py:1 (events) imports numberplane.carriers.base")
    assert found[2].startswith("kernel/probe.py:1 (kernel) imports numberplane.numbers")
