"""docs/architecture.md is generated from the code (scripts/architecture.py) and must agree with it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("architecture", ROOT / "scripts" / "architecture.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_architecture_doc_matches_the_code() -> None:
    generated = _generator().render()
    on_disk = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert on_disk == generated, "docs/architecture.md is stale: python scripts/architecture.py > docs/architecture.md"


def test_every_module_is_mapped_with_a_summary() -> None:
    generator = _generator()
    text = generator.render()
    for path in sorted(generator.SRC.rglob("*.py")):
        rel = path.relative_to(generator.SRC).as_posix()
        if path.name == "__init__.py" and rel.count("/") == 1:
            continue  # a package's docstring is its section title
        line = next(line for line in text.splitlines() if line.startswith(f"- `{rel}`"))
        assert len(line) > len(rel) + 12, f"{rel} has no docstring summary"
