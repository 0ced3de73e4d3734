"""Learners never read gold: no module outside the evaluation side may name the gold record, the gold table or any
gold field.

The store makes gold unreachable from ``LogView`` (see test_store); this test guards the other door, a learner or a
runtime stage that imports ``Gold``, calls ``Store.gold()`` or reads a gold column. The forbidden names are every
field of the ``Gold`` model that a ``Turn`` does not have (so a new gold field is forbidden without editing this
test), and every module is checked except the evaluation side listed in ``EVAL_SIDE``. Predictions of gold-like
quantities are named ``pred_*`` (``pred_failure_point``, ``pred_goal_success``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import selflearn
from selflearn.schema import Gold, Turn

SRC = Path(selflearn.__file__).parent
EVAL_SIDE = (
    "eval/",  # the gold metrics, the eval suites and the demo report score against gold
    "sim/",  # the simulator writes gold; its daily loop and log generators score days against it
    "schema.py",  # declares the Gold record
    "gold.py",  # the gold metrics (the simulator's stats, the eval suites and the dashboard's gold trend use them)
    "store/logstore.py",  # the store's gold side: its own table, never in ``LogView``
    "store/tables.py",  # the store's gold side: the gold table's key
    "store/ingest.py",  # the store's gold side: validating gold records on the way in
)
CHECKED = sorted(p for p in SRC.rglob("*.py") if not str(p.relative_to(SRC)).startswith(EVAL_SIDE))
GOLD_NAMES = (set(Gold.model_fields) - set(Turn.model_fields)) | {"Gold", "gold"}


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
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and not any(c.isspace() for c in node.value)  # a key, column or path, not prose (help text, messages)
        ):
            words = set(node.value.replace(".", " ").replace("/", " ").split())
            if words & GOLD_NAMES:
                found.append(f"{node.lineno}: string {node.value!r}")
    return found


def test_the_forbidden_names_are_the_gold_fields() -> None:
    assert {"failure_point", "goal_success", "true_intent", "is_impossible", "annotator_labels"} <= GOLD_NAMES
    assert "turn_id" not in GOLD_NAMES  # the join key is every record's
    assert len(CHECKED) >= 60 and SRC / "learners/learn.py" in CHECKED and SRC / "learners/fpi.py" in CHECKED


@pytest.mark.parametrize("path", CHECKED, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_outside_eval_names_gold(path: Path) -> None:
    assert gold_references(path) == []


def test_the_check_catches_gold(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('from selflearn.schema import Gold\n\ndef f(store):\n    return store.gold()["is_impossible"]\n')
    found = gold_references(bad)
    assert any("import" in f for f in found)
    assert any(".gold" in f for f in found)
    assert any("is_impossible" in f for f in found)
