"""Learners never read gold: no learner or runtime module may name the gold record, the gold table or gold-only fields.

The store makes gold unreachable from ``LogView`` (see test_store); this test guards the other door, a learner that
imports ``Gold``, calls ``Store.gold()`` or reads a gold-only column from some side file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import selflearn

SRC = Path(selflearn.__file__).parent
LEARNER_MODULES = sorted(
    [
        *(SRC / "pipeline").glob("*.py"),
        *(SRC / "rewrite").glob("*.py"),
        *(SRC / "labels").glob("*.py"),
        *(SRC / "learners").glob("*.py"),
        *[SRC / f"{name}.py" for name in ("text", "signals", "learn", "fpi", "teach", "feedback")],
    ]
)
GOLD_NAMES = {"Gold", "gold", "true_text", "true_intent", "true_slots", "is_rephrase_of", "annotator_labels", "goal_id"}


def gold_references(path: Path) -> list[str]:
    """Identifiers, attributes and string constants (not docstrings) that name gold."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in GOLD_NAMES:
            found.append(f"{node.lineno}: name {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in GOLD_NAMES:
            found.append(f"{node.lineno}: attribute .{node.attr}")
        elif isinstance(node, ast.alias) and node.name.split(".")[-1] in GOLD_NAMES:
            found.append(f"{node.lineno}: import {node.name}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            words = set(node.value.replace(".", " ").replace("/", " ").split())
            if words & GOLD_NAMES:
                found.append(f"{node.lineno}: string {node.value!r}")
    return found


def test_learner_modules_exist() -> None:
    missing = [p.name for p in LEARNER_MODULES if not p.exists()]
    assert not missing, missing
    assert len(LEARNER_MODULES) >= 10


@pytest.mark.parametrize("path", LEARNER_MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_learner_never_names_gold(path: Path) -> None:
    assert gold_references(path) == []


def test_the_check_catches_gold(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('from selflearn.schema import Gold\n\ndef f(store):\n    return store.gold()["true_intent"]\n')
    found = gold_references(bad)
    assert any("import" in f for f in found)
    assert any(".gold" in f for f in found)
    assert any("true_intent" in f for f in found)
