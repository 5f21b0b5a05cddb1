"""The import rules of ``src/conveyor``, checked on the source (an AST walk; nothing is imported).

Three rules, written as data below so ``docs/architecture.md`` can quote them:

1. **No import cycle** among modules. Counted: module-level and function-level imports
   (every import that can run). Left out: imports under ``if TYPE_CHECKING:``; they
   never run, and types that name each other (a ``Task`` holds the ``Producer`` whose
   ``get_task`` returns a ``Task``) would otherwise have to share one module.
2. **Layers** (:data:`FORBIDDEN`): a module under a prefix never imports a module under
   any of the prefixes listed against it. Counted: every import, ``TYPE_CHECKING`` ones
   included.
3. **No function-level import of a conveyor module**, except the lazy ones in
   :data:`LAZY_IMPORTS`, each with the reason it is lazy (start-up cost, a driver picked
   by its DSN, the CLI loading one command's code). A function-level import that only
   hides a cycle is not allowed: rule 1 counts it anyway.

An import of ``a.b`` names the module ``a.b`` (``from a import b`` names ``a.b`` when it
is a module, else ``a``); the parent packages it also runs are not counted as edges.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parent.parent / "src" / "conveyor"

DRIVERS = (
    "conveyor.stores.memory",
    "conveyor.stores.sqlite",
    "conveyor.stores.postgres",
    "conveyor.stores.redis",
    "conveyor.stores.file",
)
"""Store drivers: each is a package (or module) of its own and never imports another."""

FORBIDDEN: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "conveyor.stores",
        (
            "conveyor.worker",
            "conveyor.scheduler",
            "conveyor.cli",
            "conveyor.app",
            "conveyor.admin",
            "conveyor.maintenance",
        ),
        "stores are the bottom layer: the services use them, never the reverse",
    ),
    (
        "conveyor.worker",
        ("conveyor.app", "conveyor.cli"),
        "the worker sees the app as a conveyor.runtime.Runtime",
    ),
    (
        "conveyor.scheduler",
        ("conveyor.app", "conveyor.cli"),
        "the scheduler sees the app as a conveyor.runtime.Producer",
    ),
    *(
        (driver, tuple(other for other in DRIVERS if other != driver), "drivers are independent")
        for driver in DRIVERS
    ),
)
"""(importer prefix, prefixes it must not import, why). Plus: nothing outside the CLI
imports ``conveyor.cli`` except ``conveyor.__main__`` (:data:`CLI_ENTRY`)."""

CLI = "conveyor.cli"
CLI_ENTRY = "conveyor.__main__"

LAZY_IMPORTS: dict[tuple[str, str], str] = {
    ("conveyor.cli", "conveyor"): "each command imports what it runs: `conveyor --help` "
    "and one command do not load every command's code",
    ("conveyor.stores", "conveyor.stores"): "drivers are picked by the DSN: opening "
    "memory:// loads neither SQLite nor the file store",
    ("conveyor.app", "conveyor.worker.consumer"): "the worker stack (maintenance, memory "
    "watch, reporting) costs a producer ~50 ms at start-up; only App.worker() needs it",
    ("conveyor.app", "conveyor.worker.sync"): "the executor and the gate are needed only "
    "by App.run_sync, not by producers",
    ("conveyor.options", "conveyor.conditions"): "conditions (and the zone database) cost "
    "every producer and worker ~15 ms of start-up; only tasks that declare some need them",
    ("conveyor.payloads", "conveyor.conditions"): "the same cost, paid only by an enqueue "
    "that carries conditions",
    ("conveyor.app", "conveyor.scheduler"): "the scheduler (cronsim, the recurrence maths) "
    "costs a producer ~50 ms at start-up; only App.periodic / App.schedule need it",
}
"""(importer prefix, imported prefix) -> why the import is inside a function."""


def module_name(path: Path, root: Path = SOURCE) -> str:
    """``src/conveyor/stores/base.py`` -> ``conveyor.stores.base``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def under(module: str, prefix: str) -> bool:
    """Whether ``module`` is ``prefix`` or inside it."""
    return module == prefix or module.startswith(prefix + ".")


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement's target, as found in ``importer``."""

    importer: str
    target: str
    kind: str
    """``module``, ``function`` or ``type`` (under ``if TYPE_CHECKING:``)."""
    line: int

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.target} ({self.kind}-level)"


def is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class ImportFinder:
    """Collects the imports of one module, each with where it sits."""

    def __init__(self, module: str, is_package: bool, modules: set[str]) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.modules = modules
        self.found: list[Import] = []

    def visit(self, node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                self.visit(child, "function")
            elif isinstance(child, ast.If) and kind == "module" and is_type_checking(child.test):
                for statement in child.body:
                    self.visit_one(statement, "type")
                for statement in child.orelse:
                    self.visit_one(statement, kind)
            else:
                self.visit_one(child, kind)

    def visit_one(self, node: ast.AST, kind: str) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                self.add(alias.name, kind, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = self.absolute(node)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                self.add(full if full in self.modules else base, kind, node.lineno)
        else:
            self.visit(node, kind)

    def absolute(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        parts = self.package.split(".")
        parts = parts[: len(parts) - (node.level - 1)]
        return ".".join([*parts, *([node.module] if node.module else [])])

    def add(self, target: str, kind: str, line: int) -> None:
        if target in self.modules and target != self.module:
            self.found.append(Import(self.module, target, kind, line))


def read_imports(root: Path = SOURCE) -> list[Import]:
    """Every import of one conveyor module by another, under ``root``."""
    paths = sorted(root.rglob("*.py"))
    modules = {module_name(path, root) for path in paths}
    found: list[Import] = []
    for path in paths:
        finder = ImportFinder(module_name(path, root), path.name == "__init__.py", modules)
        finder.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), "module")
        found += finder.found
    return found


def find_cycles(imports: list[Import]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for edge in imports:
        graph.setdefault(edge.importer, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
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
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def cycle_report(imports: list[Import]) -> list[str]:
    """Each cycle with the imports that close it."""
    running = list(dict.fromkeys(edge for edge in imports if edge.kind != "type"))
    lines: list[str] = []
    for group in find_cycles(running):
        members = set(group)
        lines.append("cycle: " + ", ".join(group))
        lines += [
            f"  {edge}" for edge in running if edge.importer in members and edge.target in members
        ]
    return lines


def layer_violations(imports: list[Import]) -> list[str]:
    """Imports that break :data:`FORBIDDEN` or reach into the CLI from below it."""
    found: list[str] = []
    for edge in imports:
        for importer, targets, why in FORBIDDEN:
            if under(edge.importer, importer) and any(under(edge.target, t) for t in targets):
                found.append(f"{edge}: {why}")
        below_cli = not under(edge.importer, CLI) and edge.importer != CLI_ENTRY
        if below_cli and under(edge.target, CLI):
            found.append(f"{edge}: only the CLI and {CLI_ENTRY} import the CLI")
    return found


def lazy_rule(edge: Import) -> tuple[str, str] | None:
    """The :data:`LAZY_IMPORTS` entry that allows ``edge``, if any."""
    for importer, target in LAZY_IMPORTS:
        if under(edge.importer, importer) and under(edge.target, target):
            return importer, target
    return None


def unlisted_lazy_imports(imports: list[Import]) -> list[str]:
    """Function-level imports of conveyor modules no :data:`LAZY_IMPORTS` entry allows."""
    return [
        f"{edge}: import it at module level, or list it in LAZY_IMPORTS with its reason"
        for edge in imports
        if edge.kind == "function" and lazy_rule(edge) is None
    ]


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return read_imports()


def test_the_source_is_found(imports: list[Import]) -> None:
    importers = {edge.importer for edge in imports}
    assert {"conveyor.app", "conveyor.worker.consumer", "conveyor.stores.base"} <= importers
    assert any(edge.kind == "function" for edge in imports)
    assert any(edge.kind == "type" for edge in imports)


def test_no_import_cycle(imports: list[Import]) -> None:
    problems = cycle_report(imports)
    assert not problems, "\n".join(problems)


def test_layers(imports: list[Import]) -> None:
    problems = layer_violations(imports)
    assert not problems, "\n".join(problems)


def test_function_level_imports_are_listed(imports: list[Import]) -> None:
    problems = unlisted_lazy_imports(imports)
    assert not problems, "\n".join(problems)


def test_every_lazy_entry_is_used(imports: list[Import]) -> None:
    used = {lazy_rule(edge) for edge in imports if edge.kind == "function"}
    stale = [
        f"{importer} -> {target}"
        for importer, target in LAZY_IMPORTS
        if (importer, target) not in used
    ]
    assert not stale, "LAZY_IMPORTS entries no import needs any more: " + ", ".join(stale)


# the checks themselves, on planted source --------------------------------------------------
def plant(tmp_path: Path, files: dict[str, str]) -> list[Import]:
    """Write ``files`` (paths under a ``conveyor`` package) and read their imports."""
    root = tmp_path / "conveyor"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(text)
    return read_imports(root)


def test_a_planted_cycle_through_a_function_level_import_is_found(tmp_path: Path) -> None:
    imports = plant(
        tmp_path,
        {
            "app.py": "from conveyor.worker.gate import Gate\n",
            "worker/gate.py": "def admit():\n    from conveyor.app import App\n",
        },
    )
    report = "\n".join(cycle_report(imports))
    assert "cycle: conveyor.app, conveyor.worker.gate" in report
    assert "conveyor.worker.gate:2 imports conveyor.app (function-level)" in report
    assert unlisted_lazy_imports(imports)


def test_a_type_only_cycle_is_not_a_cycle_but_breaks_a_layer(tmp_path: Path) -> None:
    imports = plant(
        tmp_path,
        {
            "app.py": "from conveyor.worker.gate import Gate\n",
            "worker/gate.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from conveyor.app import App\n"
            ),
        },
    )
    assert cycle_report(imports) == []
    assert layer_violations(imports) == [
        "conveyor.worker.gate:3 imports conveyor.app (type-level): "
        "the worker sees the app as a conveyor.runtime.Runtime"
    ]


def test_planted_layer_breaks_are_found(tmp_path: Path) -> None:
    imports = plant(
        tmp_path,
        {
            "stores/sqlite/store.py": "from ..redis import codec\nimport conveyor.worker.gate\n",
            "stores/redis/codec.py": "",
            "worker/gate.py": "",
            "config.py": "from conveyor.cli import main\n",
            "cli/__init__.py": "def main(): pass\n",
        },
    )
    problems = "\n".join(layer_violations(imports))
    assert "conveyor.stores.sqlite.store:1 imports conveyor.stores.redis.codec" in problems
    assert "conveyor.stores.sqlite.store:2 imports conveyor.worker.gate" in problems
    assert "conveyor.config:1 imports conveyor.cli (module-level)" in problems
