"""The selflearn import graph is acyclic: data flows one way, and so do imports (issue 15).

Every ``import`` counts, at module level or inside a function (a function-level import only postpones a cycle);
imports under ``if TYPE_CHECKING:`` do not (they never run). Importing ``a.b.c`` also runs ``a/__init__`` and
``a/b/__init__``, so those count as edges too.
"""

from __future__ import annotations

import ast

import networkx as nx
from architecture import (  # scripts/architecture.py: the map is drawn from the same walk
    LAYERS,
    SRC,
    imported,
    module_name,
)


def import_graph() -> nx.DiGraph:
    """selflearn module -> the selflearn modules importing it runs (including their parent packages)."""
    files = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name in imported(tree, module, path.name == "__init__.py", set(files)):
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
    found = imported(
        tree, "selflearn.artifacts", False, {"selflearn.home", "selflearn.ids", "selflearn.store.logstore"}
    )
    assert "selflearn.store.logstore" not in found
    assert {"selflearn.home", "selflearn.ids"} <= found


def test_import_graph_is_acyclic() -> None:
    graph = import_graph()
    cycles = list(nx.simple_cycles(graph))
    shortest = min(cycles, key=len, default=None)
    assert shortest is None, f"{len(cycles)} import cycle(s), e.g. {' -> '.join([*shortest, shortest[0]])}"


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
