"""The selflearn import graph is acyclic: data flows one way, and so do imports (issue 15).

Every ``import`` counts, at module level or inside a function (a function-level import only postpones a cycle);
imports under ``if TYPE_CHECKING:`` do not (they never run). Importing ``a.b.c`` also runs ``a/__init__`` and
``a/b/__init__``, so those count as edges too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "selflearn"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Names of every module an import statement in ``tree`` names (absolute, relative resolved), minus
    ``if TYPE_CHECKING:`` bodies."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> nx.DiGraph:
    """selflearn module -> the selflearn modules importing it runs (including their parent packages)."""
    files = {_module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name in _imported(tree, module, path.name == "__init__.py"):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # a.b.c runs a, a.b and a.b.c
                target = ".".join(parts[:i])
                if target in files and target != module and not module.startswith(target + "."):
                    graph.add_edge(module, target)
    return graph


def test_graph_sees_every_module_and_function_level_imports() -> None:
    graph = import_graph()
    assert "selflearn.cli.main" in graph and "selflearn.learners.labels.dialogue" in graph
    assert graph.has_edge("selflearn.cli.store", "selflearn.store.logstore")  # a function-level import
    assert graph.has_edge("selflearn.learners.fpi", "selflearn.learners.labels")  # runs labels/__init__


def test_type_checking_imports_do_not_count_but_function_imports_do() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from selflearn.store.logstore import Store\n"
        "def f():\n    from selflearn.home import Home\n"
        "from . import ids\n"
    )
    found = _imported(tree, "selflearn.artifacts", is_package=False)
    assert "selflearn.store.logstore" not in found
    assert {"selflearn.home", "selflearn.ids"} <= found


def test_import_graph_is_acyclic() -> None:
    graph = import_graph()
    cycles = list(nx.simple_cycles(graph))
    shortest = min(cycles, key=len, default=None)
    assert shortest is None, f"{len(cycles)} import cycle(s), e.g. {' -> '.join([*shortest, shortest[0]])}"


# Packages in data-flow order (scripts/architecture.py); a package imports root modules and the packages before
# it (or beside it, in the same tuple), never one after it.
LAYERS = (("store",), ("runtime",), ("teach",), ("learners",), ("sim",), ("integrations", "service"), ("eval",),
          ("bench",), ("cli",))  # fmt: skip


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) < 3:
        return None  # a root module or the package itself
    return next((i for i, layer in enumerate(LAYERS) if parts[1] in layer), None)


def test_packages_import_only_downstream_of_the_data_flow() -> None:
    graph = import_graph()
    upward = [
        f"{a} -> {b}"
        for a, b in graph.edges
        if (la := _layer(a)) is not None and (lb := _layer(b)) is not None and lb > la
    ]
    assert not upward, upward
