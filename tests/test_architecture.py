"""docs/architecture.md is generated from the code (scripts/architecture.py) and must agree with it."""

from __future__ import annotations

from pathlib import Path

import architecture  # scripts/architecture.py (on pytest's pythonpath)

ROOT = Path(__file__).resolve().parents[1]


def test_architecture_doc_matches_the_code() -> None:
    generated = architecture.render()
    on_disk = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert on_disk == generated, "docs/architecture.md is stale: python scripts/architecture.py > docs/architecture.md"


def test_every_module_is_mapped_with_a_summary() -> None:
    text = architecture.render()
    for path in sorted(architecture.SRC.rglob("*.py")):
        rel = path.relative_to(architecture.SRC).as_posix()
        if path.name == "__init__.py" and rel.count("/") == 1:
            continue  # a package's docstring is its section title
        line = next(line for line in text.splitlines() if line.startswith(f"- `{rel}`"))
        assert len(line) > len(rel) + 12, f"{rel} has no docstring summary"
