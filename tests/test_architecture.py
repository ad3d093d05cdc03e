"""The shape of `node/`: no import circles, imports that point down the layers
docs/architecture.md names, no module over 500 lines, SQLite opened only by the catalog
package, and a table in docs/architecture.md that is the file list.

The import graph is built with `ast` from every `import` and `from … import` in a module,
wherever it stands: at module level, under `if TYPE_CHECKING:`, or inside a function."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "node"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
MAX_LINES = 500
LAYERS = ("primitive", "domain", "service", "edge")
SQLITE_MODULES = {"sqlite3", "aiosqlite"}
SQLITE_OWNER = "node.catalog"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(NODE.rglob("*.py"))}


def imported_names(path: Path, name: str) -> Iterator[tuple[str, list[str]]]:
    """Every absolute module name `path` imports, at any depth of its syntax tree, with the
    names a `from … import` takes from it (which may be its submodules)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for item in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(item, ast.Import):
            yield from ((alias.name, []) for alias in item.names)
        elif isinstance(item, ast.ImportFrom):
            if item.level:
                base = package.split(".")
                base = base[: len(base) - item.level + 1]
                origin = ".".join([*base, item.module] if item.module else base)
            else:
                origin = item.module or ""
            yield origin, [alias.name for alias in item.names]


def resolve(target: str, known: dict[str, Path]) -> str | None:
    """The module of `node/` that importing `target` runs last (its longest known prefix)."""
    parts = target.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def targets(origin: str, names: list[str], known: dict[str, Path]) -> set[str]:
    """The modules of `node/` one import statement depends on. `from node import feed` depends
    on the module node.feed; a package's own `__init__` counts only where a name is taken from
    it, not when a submodule is (as import-linter and pydeps count them)."""
    found = {f"{origin}.{n}" for n in names if f"{origin}.{n}" in known}
    if len(found) < len(names) or not names:
        module = resolve(origin, known)
        if module is not None:
            found.add(module)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for origin, names in imported_names(path, name):
            graph[name] |= targets(origin, names, known) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        # An explicit stack: the graph is deep enough that recursion is not worth the risk.
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def architecture_table() -> dict[str, str]:
    """docs/architecture.md's rows: module file → layer."""
    rows: dict[str, str] = {}
    pattern = re.compile(r"^\|\s*(\w+)\s*\|\s*`(node/[^`]+\.py)`\s*\|")
    for line in ARCHITECTURE.read_text().splitlines():
        match = pattern.match(line)
        if match:
            layer, file = match.groups()
            assert file not in rows, f"docs/architecture.md lists {file} twice"
            rows[file] = layer
    return rows


def test_the_cycle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_imports_are_read_from_every_depth(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import node.feed\n"
        "from . import signing\n"
        "if TYPE_CHECKING:\n"
        "    from node.web.state import NODE\n"
        "def f() -> None:\n"
        "    from ..catalog import open_catalog\n"
    )
    path = tmp_path / "module.py"
    path.write_text(source)
    names = {origin for origin, _ in imported_names(path, "node.web.module")}
    assert {"node.feed", "node.web", "node.web.state", "node.catalog"} <= names
    known = {m: path for m in ("node.web", "node.web.signing", "node.catalog")}
    assert targets("node.web", ["signing"], known) == {"node.web.signing"}
    assert targets("node.catalog", ["open_catalog"], known) == {"node.catalog"}


def test_node_has_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles in node/: " + "; ".join(" ↔ ".join(c) for c in found)


def test_no_module_in_node_is_over_500_lines() -> None:
    over = {
        str(path.relative_to(ROOT)): lines
        for path in NODE.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert over == {}, f"modules over {MAX_LINES} lines: {over}"


def test_only_the_catalog_package_opens_sqlite() -> None:
    users = {
        name
        for name, path in modules().items()
        for origin, _ in imported_names(path, name)
        if origin.split(".")[0] in SQLITE_MODULES
    }
    outside = {u for u in users if u != SQLITE_OWNER and not u.startswith(SQLITE_OWNER + ".")}
    assert users, "nothing imports SQLite: the check reads imports wrongly"
    assert outside == set(), f"SQLite is opened outside {SQLITE_OWNER}: {sorted(outside)}"


def test_the_architecture_table_is_the_file_list() -> None:
    table = set(architecture_table())
    files = {str(path.relative_to(ROOT)) for path in NODE.rglob("*.py")}
    assert sorted(files - table) == [], "modules missing from docs/architecture.md"
    assert sorted(table - files) == [], "docs/architecture.md lists files that do not exist"


def test_every_row_names_a_known_layer() -> None:
    unknown = {f: layer for f, layer in architecture_table().items() if layer not in LAYERS}
    assert unknown == {}, f"layers must be one of {LAYERS}"


def test_imports_point_down_the_layers() -> None:
    layer_of = {
        module_name(ROOT / file): LAYERS.index(layer)
        for file, layer in architecture_table().items()
        if layer in LAYERS
    }
    upward = sorted(
        f"{importer} ({LAYERS[layer_of[importer]]}) imports {imported} "
        f"({LAYERS[layer_of[imported]]})"
        for importer, targets in import_graph().items()
        for imported in targets
        if importer in layer_of and imported in layer_of and layer_of[imported] > layer_of[importer]
    )
    assert upward == []


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_has_modules(layer: str) -> None:
    assert layer in architecture_table().values()
