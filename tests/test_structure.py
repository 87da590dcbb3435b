"""The code's structure: no import cycle among clawdesk's modules, and no import hidden
in a function without a measured reason.

Both checks read the source with `ast` (nothing is imported), so they are fast and see
what Python runs at import time: module-level imports, including those under a plain
`if`/`try`, but not those under `if TYPE_CHECKING:` (annotations only).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agents", "clawdesk", "connectors", "schemas", "topics")

# Where every import inside a function must say why it is deferred (`# deferred:` on
# its line, the line above, or on the deferred import right above it). Files another
# change owns are left out until it lands: the CLI layer, the NLU split, the worker
# readiness work (agents/startup.py, runtime/stack.py, soak) and the skills redesign.
DEFERRED_CHECKED = (
    "agents",
    "clawdesk/gateway",
    "clawdesk/handoff",
    "clawdesk/integrations",
    "clawdesk/kb",
    "clawdesk/llm",
    "clawdesk/ops",
    "clawdesk/runtime",
    "clawdesk/storage",
    "clawdesk/skills/worker.py",
    "clawdesk/skills/worker_skills.py",
    "clawdesk/app.py",
    "clawdesk/data_paths.py",
    "clawdesk/retrying.py",
    "clawdesk/services.py",
    "clawdesk/settings.py",
    "connectors",
    "schemas",
    "topics",
)
DEFERRED_NOT_YET = (
    "agents/startup.py",
    "agents/nlu.py",
    "clawdesk/runtime/stack.py",
    "connectors/poll.py",
)


def _modules() -> dict[str, Path]:
    """Every module of the packages by dotted name (a package by its own name)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports run when the module is imported (not `if TYPE_CHECKING:` ones)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _module_level_imports(node.body)
            yield from _module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _module_level_imports(block)
            for handler in node.handlers:
                yield from _module_level_imports(handler.body)
        elif isinstance(node, ast.With):
            yield from _module_level_imports(node.body)


def import_graph() -> dict[str, set[str]]:
    """Each module → the package modules it imports at module level. `from p import x`
    depends on `p.x` when that is a module, else on `p` (its `__init__` re-exports)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in _module_level_imports(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in modules)
                continue
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:
                    deps.add(sub)
                elif base in modules:
                    deps.add(base)
        deps.discard(name)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (cycle := visit(dep)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_no_module_level_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_the_graph_sees_the_services_and_skills_edges() -> None:
    """The services build the skill runtime, so the skill runtime must never import the
    services back (the cycle this test exists to keep out)."""
    graph = import_graph()
    assert "clawdesk.skills.worker_skills" in graph["clawdesk.services"]
    assert "clawdesk.services" not in graph["clawdesk.skills.worker_skills"]
    with_cycle = {**graph, "clawdesk.skills.worker_skills": {"clawdesk.services"}}
    cycle = find_cycle(with_cycle)
    assert cycle is not None and "clawdesk.services" in cycle


def test_type_checking_imports_are_not_edges() -> None:
    """`clawdesk.services` names the knowledge base only for annotations."""
    assert "clawdesk.kb.index" not in import_graph()["clawdesk.services"]


def _checked_files() -> list[Path]:
    files: list[Path] = []
    for entry in DEFERRED_CHECKED:
        path = ROOT / entry
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    skipped = {ROOT / p for p in DEFERRED_NOT_YET}
    return [f for f in files if f not in skipped]


def undeclared_deferred_imports(path: Path) -> list[str]:
    """Imports inside functions of `path` without a `# deferred:` reason."""
    lines = path.read_text().splitlines()
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    found: list[str] = []
    for fn in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        imports = [n for n in ast.walk(fn) if isinstance(n, ast.Import | ast.ImportFrom)]
        declared: set[int] = set()  # end lines of the imports that say why
        for node in sorted(imports, key=lambda n: n.lineno):
            end = node.end_lineno or node.lineno
            own = lines[node.lineno - 2 : end]  # the line above and the statement's lines
            if any("# deferred:" in line for line in own) or node.lineno - 1 in declared:
                declared.add(end)
            else:
                found.append(f"{where}:{node.lineno}: {lines[node.lineno - 1]}")
    return found


def test_imports_inside_functions_say_why() -> None:
    missing = [hit for path in _checked_files() for hit in undeclared_deferred_imports(path)]
    assert not missing, "imports inside functions without `# deferred:`:\n" + "\n".join(missing)


def test_the_deferred_check_can_fail(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f() -> None:\n    import json\n\n    json.dumps(1)\n")
    assert undeclared_deferred_imports(sample) == [f"{sample}:2:     import json"]
    sample.write_text("def f() -> None:\n    import json  # deferred: why, 1 ms\n    import os\n")
    assert undeclared_deferred_imports(sample) == []
