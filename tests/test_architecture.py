"""The package's shape: imports flow one way (no cycles, counting imports inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import edgesr

PACKAGE = Path(edgesr.__file__).resolve().parent


def module_files(root: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (packages as their name)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports anywhere in its file (top level or in functions),
    plus the packages Python initialises first on the way to each (``edgesr.models`` for
    ``edgesr.models.spec``), except packages that contain ``name`` itself."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            targets += [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
    found: set[str] = set()
    for target in targets:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        while target.startswith("edgesr") and target != name:
            if not name.startswith(target + "."):
                found.add(target)
            target = target.rpartition(".")[0]
    return found


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path [a, b, ..., a], or None when it has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    root = tmp_path / "edgesr"
    (root / "engine").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "engine" / "__init__.py").write_text("from edgesr.engine.backend import run\n")
    (root / "engine" / "backend.py").write_text("def run():\n    from edgesr.export import graph\n")
    (root / "export.py").write_text("from edgesr.engine import run\n")
    modules = module_files(root)
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    assert import_cycle(graph) == ["edgesr.engine", "edgesr.engine.backend", "edgesr.export", "edgesr.engine"]


def test_no_import_cycle_among_the_package_modules():
    modules = module_files()
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    assert len(graph) > 40 and "edgesr.models" in graph["edgesr.engine.upscaler"]
    assert import_cycle(graph) is None


def family_name_uses(path: Path, names: set[str]) -> list[str]:
    """Where a file names a family outside docstrings and messages: a string constant equal to
    a family name (``spec.family == "Bicubic"``, ``{"eSR-TM": 1}``), or an import of the
    family groupings (``ONE_LAYER_FAMILIES``)."""
    tree = ast.parse(path.read_text())
    formatted = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and node.value in names and id(node) not in formatted):
            found.append(f"{path.name}:{node.lineno} {node.value!r}")
        if isinstance(node, ast.ImportFrom) and any(a.name.startswith("ONE_LAYER") for a in node.names):
            found.append(f"{path.name}:{node.lineno} imports {', '.join(a.name for a in node.names)}")
    return found


def test_the_family_name_finder_sees_a_branch_on_a_family(tmp_path):
    source = tmp_path / "tiling.py"
    source.write_text('def full(spec):\n    """For FSRCNN."""\n    return spec.family == "FSRCNN"\n')
    assert family_name_uses(source, {"FSRCNN"}) == ["tiling.py:3 'FSRCNN'"]


def test_no_family_name_is_compared_outside_the_models_package():
    from edgesr.models import FAMILIES

    outside = [p for p in PACKAGE.rglob("*.py") if (PACKAGE / "models") not in p.parents]
    uses = [use for path in outside for use in family_name_uses(path, set(FAMILIES))]
    assert uses == [], "ask edgesr.models.family_of(spec) for the fact instead: " + "; ".join(uses)


def terminal_uses(path: Path) -> list[str]:
    """Where a file talks to the terminal: imports Rich or calls print()."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        found += [f"{path.name}:{node.lineno} imports {n}" for n in names if n.split(".")[0] == "rich"]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            found.append(f"{path.name}:{node.lineno} print()")
    return found


def test_only_the_command_line_talks_to_the_terminal():
    library = [p for p in PACKAGE.rglob("*.py") if p.name not in ("cli.py", "cli_views.py")]
    uses = [use for path in library for use in terminal_uses(path)]
    assert uses == [], "report through an edgesr.progress callback instead: " + "; ".join(uses)
    assert terminal_uses(PACKAGE / "cli_views.py")  # the finder sees Rich where it is
