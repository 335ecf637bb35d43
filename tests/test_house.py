"""The house stays in order: no import circle, no module over 400 lines, each room imports only what it may.

Imports are read with `ast` at any depth (an import inside a function is
still a dependency), skipping those under ``if TYPE_CHECKING:``. The rooms
and what each may import are README's table ("Layout").
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rehearsal", "locustfiles")
MAX_LINES = 400
#: room -> the rooms it may import (itself and the package's face, rehearsal/__init__ and errors, always).
MAY_IMPORT = {
    "shared": set(),
    "plan": {"shared"},
    "results": {"plan", "shared"},
    "run": {"plan", "results", "shared"},
    "report": {"results", "plan", "shared"},
    "cli": {"shared", "plan", "run", "results", "report", "portal"},
    "portal": {"shared"},
    "locustfiles": {"plan", "results", "run", "shared"},
}
#: The package's face every room may use; the portal and shared only its paths, not the harness's errors
#: (the portal is a service of its own, with its own error tree).
FACE = {"rehearsal", "rehearsal.errors"}
SELF_CONTAINED = {"portal", "shared"}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            out[".".join(parts)] = (path, is_package)
    return out


def _imports(name: str, path: Path, is_package: bool, known: set[str]) -> set[str]:
    found: set[str] = set()

    def resolve(candidate: str) -> None:
        while candidate and candidate not in known:
            candidate = candidate.rpartition(".")[0]
        if candidate and candidate != name:
            found.add(candidate)

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    resolve(alias.name)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    here = name.split(".") if is_package else name.split(".")[:-1]
                    here = here[: len(here) - (child.level - 1)]
                    base = ".".join(here + ([base] if base else []))
                for alias in child.names:
                    resolve(f"{base}.{alias.name}")
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, is_pkg, known) for name, (path, is_pkg) in modules.items()}


def _room(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "locustfiles":
        return "locustfiles"
    return parts[1] if len(parts) > 1 and parts[1] in MAY_IMPORT else None


def test_no_import_circle() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def strong(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for v in graph:
        if v not in index:
            strong(v)
    assert not circles, f"import circles: {circles}"


@pytest.mark.parametrize("module", sorted(_modules()))
def test_module_is_small(module: str) -> None:
    path, _ = _modules()[module]
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (at most {MAX_LINES})"


def test_rooms_import_only_what_they_may() -> None:
    wrong = []
    for module, targets in _graph().items():
        room = _room(module)
        if room is None:
            continue
        for target in targets:
            other = _room(target)
            if target == "rehearsal.errors" and room in SELF_CONTAINED:
                wrong.append(f"{module} -> {target}")
                continue
            if target in FACE or other is None or other == room:
                continue
            if other not in MAY_IMPORT[room]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against README's table: " + ", ".join(sorted(wrong))
