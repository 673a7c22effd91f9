"""The import rules of docs/architecture.md, read from the source (ast, nothing imported).

- No import cycles among the modules of dsrctl/, providers/ and state/. Every import
  counts: at module level, inside functions, and under ``if TYPE_CHECKING:`` (a type
  import is still a dependency of the contract; mypy follows it).
- ``providers`` imports nothing from ``dsrctl`` or ``state``; ``state`` imports nothing
  from ``dsrctl`` or ``providers``.
- The platform packages ``dsrctl.linux`` and ``dsrctl.windows`` import nothing of each
  other: a platform is one package plus its record.

What breaks a rule today is listed below, exactly: a new edge fails, and so does a listed
edge that is gone (delete its line), so the lists only shrink.

Not seen here: the module names of the registries (dsrctl.platforms.PLATFORMS and the
"module:attribute" names in each platform's record, providers.linux.persist.backends.BACKENDS),
which are imported by name at run time; tests/unit/test_platforms.py loads the records'.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parents[2]
PACKAGES = ("dsrctl", "providers", "state")
# package -> the packages it must not import
FORBIDDEN = {
    "providers": ("dsrctl", "state"),
    "state": ("dsrctl", "providers"),
}

# The platform packages of dsrctl: none imports another.
PLATFORM_PACKAGES = ("dsrctl.linux", "dsrctl.windows")

# Cycles that remain, each as the set of modules it joins (a strongly connected component).
# None: the last four went in issue 10 (cli/cli_window, spec/spec_windows, windows
# host/loopback, confirm/rollback).
ALLOWED_CYCLES: set[frozenset[str]] = set()

# importer -> the forbidden modules it imports. None: the last went in issue 10 (dsrctl
# checks the spec against the host; the safe writer is providers/safefile.py, which state
# receives from dsrctl through state/writer.py's FileWriter).
ALLOWED_FORBIDDEN: dict[str, set[str]] = {}


def module_files() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _imported_names(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: dict[str, Path]
) -> list[str]:
    """The dotted names ``node`` imports: ``from X import a`` is the submodule X.a when
    there is one, else a name defined in X."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        here = module.split(".") if is_package else module.split(".")[:-1]
        here = here[: len(here) - (node.level - 1)]
        base = ".".join([*here, *([node.module] if node.module else [])])
    submodules = [f"{base}.{alias.name}" for alias in node.names]
    submodules = [name for name in submodules if name in modules]
    return submodules if len(submodules) == len(node.names) else [*submodules, base]


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The module of ours a dotted name is (or is defined in), None for other packages."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_edges(modules: dict[str, Path]) -> Iterator[tuple[str, str, int]]:
    """(importer, imported, line) for every import of one of our modules by another."""
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _imported_names(node, module, path.name == "__init__.py", modules):
                target = _owner(name, modules)
                if target is not None and target != module:
                    yield module, target, node.lineno


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.get(successor, ())))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.add(frozenset(component))
    return found


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    lines: dict[tuple[str, str], int] = {}
    for importer, imported, line in import_edges(module_files()):
        graph.setdefault(importer, set()).add(imported)
        lines.setdefault((importer, imported), line)
    found = cycles(graph)
    new = sorted(
        "; ".join(
            f"{a} imports {b} (line {lines[a, b]})"
            for a in sorted(cycle)
            for b in sorted(graph[a] & cycle)
        )
        for cycle in found - ALLOWED_CYCLES
    )
    assert not new, "import cycles (break them; see docs/architecture.md):\n" + "\n".join(new)
    gone = [sorted(cycle) for cycle in ALLOWED_CYCLES - found]
    assert not gone, f"these cycles are gone: delete them from ALLOWED_CYCLES: {gone}"


def test_ground_floor_imports_nothing_above_it() -> None:
    found: dict[str, set[str]] = {}
    where: dict[tuple[str, str], int] = {}
    for importer, imported, line in import_edges(module_files()):
        top = importer.partition(".")[0]
        if imported.partition(".")[0] in FORBIDDEN.get(top, ()):
            found.setdefault(importer, set()).add(imported)
            where.setdefault((importer, imported), line)
    new = sorted(
        f"{importer} imports {imported} (line {where[importer, imported]})"
        for importer, imported_set in found.items()
        for imported in imported_set - ALLOWED_FORBIDDEN.get(importer, set())
    )
    assert not new, (
        "providers/ imports nothing of dsrctl or state, state/ nothing of dsrctl or "
        "providers (docs/architecture.md):\n" + "\n".join(new)
    )
    gone = sorted(
        f"{importer} -> {imported}"
        for importer, imported_set in ALLOWED_FORBIDDEN.items()
        for imported in imported_set - found.get(importer, set())
    )
    assert not gone, "no longer imported: delete from ALLOWED_FORBIDDEN:\n" + "\n".join(gone)


def _package(module: str, packages: tuple[str, ...]) -> str | None:
    return next((p for p in packages if module == p or module.startswith(p + ".")), None)


def test_platform_packages_import_nothing_of_each_other() -> None:
    found = sorted(
        f"{importer} imports {imported} (line {line})"
        for importer, imported, line in import_edges(module_files())
        if (mine := _package(importer, PLATFORM_PACKAGES)) is not None
        and _package(imported, PLATFORM_PACKAGES) not in (None, mine)
    )
    assert not found, (
        "platform code is independent (docs/architecture.md); move what both need into "
        "dsrctl/:\n" + "\n".join(found)
    )
