"""Every public class field in src/selflearn says what it is: a docstring on the line after it (hassil style), or a
pydantic ``Field(description=...)`` (which also reaches the service's OpenAPI schema)."""

from __future__ import annotations

import ast
from pathlib import Path

import selflearn

SRC = Path(selflearn.__file__).parent


def _described(field: ast.AnnAssign) -> bool:
    value = field.value
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name | ast.Attribute)
        and (value.func.id if isinstance(value.func, ast.Name) else value.func.attr) == "Field"
        and any(k.arg == "description" for k in value.keywords)
    )


def undocumented(source: str, name: str) -> list[str]:
    """``module:Class.field`` of every public field of a public class with neither a docstring nor a description."""
    missing = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
            continue
        for i, stmt in enumerate(node.body):
            if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.target, ast.Name):
                continue
            if stmt.target.id.startswith("_") or _described(stmt):
                continue
            after = node.body[i + 1] if i + 1 < len(node.body) else None
            if not (
                isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                missing.append(f"{name}:{node.name}.{stmt.target.id}")
    return missing


def test_every_public_field_has_a_docstring() -> None:
    missing = [
        m for path in sorted(SRC.rglob("*.py")) for m in undocumented(path.read_text(), str(path.relative_to(SRC)))
    ]
    assert not missing, "fields without a docstring (add a one-line string on the line after each):\n" + "\n".join(
        missing
    )


def test_the_check_names_an_undocumented_field() -> None:
    source = '''
from dataclasses import dataclass
from pydantic import BaseModel, Field

@dataclass
class Config:
    rate: float = 1.0
    """Scale of every error probability."""
    window_s: float = 30.0  # a comment is not a docstring
    _private: int = 0

class Request(BaseModel):
    text: str = Field(description="What was said.")
    user: str

class _Hidden:
    secret: int
'''
    assert undocumented(source, "m.py") == ["m.py:Config.window_s", "m.py:Request.user"]
