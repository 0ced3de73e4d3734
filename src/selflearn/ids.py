"""Validated identifiers (user, home, device and artifact ids) and the one function that turns ids into paths.

Ids come from untrusted logs and requests, and some of them name folders (``personal/<user_id>/``), so one rule
holds everywhere: ASCII letters, digits, ``_``, ``-`` and ``@``, with single dots only between them (``maple.ben``,
``h003_marsh.emil``, ``ep.bedroom_speaker``), at most ``MAX_LENGTH`` characters. That refuses ``..``, ``/``, ``\\``,
absolute paths, NUL, the empty id and a leading dot. Ingest (``schema``), the service and the CLI check it, and
``child_path`` checks it again and proves the joined path stays under its root before any file is touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from selflearn.errors import UsageError

MAX_LENGTH = 128
CORE = r"[A-Za-z0-9_@-]+(?:\.[A-Za-z0-9_@-]+)*"
PATTERN = "^" + CORE + "$"  # for JSON schema / pydantic / RE2, where ``$`` is the end of the text
_FULL = re.compile(CORE)


class InvalidId(UsageError):
    """An id that breaks the rule, with the reason in one line (a usage error: exit 2, HTTP 422)."""


def problem(value: object) -> str | None:
    """Why ``value`` is not a valid id, or None if it is one."""
    if not isinstance(value, str):
        return f"not a string ({type(value).__name__})"
    if not value:
        return "empty"
    if len(value) > MAX_LENGTH:
        return f"longer than {MAX_LENGTH} characters"
    if _FULL.fullmatch(value):
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "has a control character"
    if "/" in value or "\\" in value:
        return "has a path separator"
    if ".." in value:
        return "has '..'"
    if value.startswith("."):
        return "starts with a dot"
    if value.endswith("."):
        return "ends with a dot"
    return "has a character other than ASCII letters, digits, '_', '-', '@' and single inner dots"


def check(value: str, what: str = "id") -> str:
    """``value`` if it is a valid id, else ``InvalidId`` naming ``what`` and the reason."""
    reason = problem(value)
    if reason is not None:
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise InvalidId(f"{what} {shown!r} is not a valid id: {reason}")
    return value


def is_valid(value: object) -> bool:
    return problem(value) is None


@dataclass(frozen=True)
class IdFormat:
    """Marks a pydantic field as an id: the ingest fast paths (msgspec, DuckDB) read ``pattern`` to mirror ``check``,
    and the JSON schema (OpenAPI) shows it."""

    pattern: str = PATTERN
    """Anchored, for JSON schema and RE2."""
    core: str = CORE
    """Unanchored, for full-match functions."""

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        out: dict[str, Any] = handler(schema)
        out["pattern"] = self.pattern
        return out


Id = Annotated[str, Field(min_length=1, max_length=MAX_LENGTH), AfterValidator(check), IdFormat()]
"""A user, home, device or artifact id as a pydantic field type."""


def child_path(root: Path, *parts: str) -> Path:
    """``root/part/...`` for ids ``parts``: each is checked, and the result (symlinks resolved) must lie under
    ``root``; the only way an id becomes a path."""
    if not parts:
        raise InvalidId("no id given for a path")
    for part in parts:
        check(part)
    path = root.joinpath(*parts)
    if not path.resolve().is_relative_to(root.resolve()):
        raise InvalidId(f"path for {'/'.join(parts)!r} leaves {root}")
    return path


def mention(user_id: str) -> re.Pattern[bytes]:
    """Bytes that name exactly this id: not a longer id it is the prefix or suffix of (``h003_marsh`` does not match
    inside ``h003_marsh.emil``)."""
    name = re.escape(check(user_id).encode())
    return re.compile(rb"(?<![\w@.-])" + name + rb"(?![\w@-]|\.[\w@-])", re.ASCII)
