"""The layers only look down, nothing imports in a circle, and the package installs as ``atelier.*``.

Layers, top to bottom: ``ui`` → ``assistant`` → ``memory`` → ``tools``. Inside ``tools``, ``settings`` and
``errors`` are the floor (they import nothing of the project) and the serving modules never import the
training package (only the command line does, for ``atelier train-*``). See ``docs/architecture.md``.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAYERS = {"tools": 0, "memory": 1, "assistant": 2, "ui": 3}
FLOOR = {"atelier.tools.settings", "atelier.tools.errors"}
TRAINING = "atelier.tools.training"
COMMAND_LINE = "atelier.ui.cli"  # fronts serving and training alike (``atelier train-encoder``), lazily


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return "atelier." + ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for layer in LAYERS for p in (REPO / layer).rglob("*.py")}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every project module ``path`` imports, at any depth of the file (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] in LAYERS:
                found.add("unprefixed:" + name)
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("atelier."):
                found.add(name)
    return found


def layer(module: str) -> int:
    return LAYERS[module.split(".")[1]]


def test_every_import_uses_the_atelier_namespace():
    modules = project_modules()
    bare = {m: sorted(i for i in imports_of(p, modules) if i.startswith("unprefixed:")) for m, p in modules.items()}
    assert {m: i for m, i in bare.items() if i} == {}


def test_no_layer_imports_a_layer_above_it():
    modules = project_modules()
    upward = []
    for module, path in modules.items():
        for imported in imports_of(path, modules):
            if imported.startswith("atelier.") and layer(imported) > layer(module):
                upward.append(f"{module} -> {imported}")
    assert upward == []


def test_the_floor_imports_nothing_of_the_project_and_serving_never_imports_training():
    modules = project_modules()
    for module in FLOOR:
        assert module in modules, module
        assert {i for i in imports_of(modules[module], modules) if i != module} == set(), module
    serving = [m for m in modules if not m.startswith(TRAINING) and m != COMMAND_LINE]
    leaks = [f"{m} -> {i}" for m in serving for i in imports_of(modules[m], modules) if i.startswith(TRAINING)]
    assert leaks == []


def test_no_import_cycles():
    modules = project_modules()
    graph = {m: {i for i in imports_of(p, modules) if i in modules and i != m} for m, p in modules.items()}
    # A package's __init__ re-exporting its own submodules is not a cycle of jobs: drop parent -> child edges.
    graph = {m: {i for i in deps if not i.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_every_package_folder_is_listed_for_the_wheel():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {module_name(p.parent / "__init__.py") for layer in [*LAYERS, "prompts"]
               for p in (REPO / layer).rglob("__init__.py")}
    assert on_disk == listed
    assert all(config["package-dir"][f"atelier.{top}"] == top for top in [*LAYERS, "prompts"])
