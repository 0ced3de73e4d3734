"""Scrubbing a forgotten user from a quarantine file: rejected rows are raw, possibly broken JSON lines, so they are
matched by the user ids they name (escapes decoded) or, naming nobody, by the user's own phrases."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_PAIR = re.compile(r'("(?:[^"\\]|\\.)*")\s*:\s*("(?:[^"\\]|\\.)*")')


def _decoded(literal: str) -> str | None:
    try:
        value = json.loads(literal)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _named_users(raw: str) -> set[str]:
    """The values of ``user_id`` keys in a raw (possibly broken or JSON-escaped) JSON line, decoded."""
    named = set()
    for key, value in _JSON_PAIR.findall(raw):
        if _decoded(key) == "user_id" and (decoded := _decoded(value)) is not None:
            named.add(decoded)
    return named


def scrub_quarantine(path: Path, user_id: str, phrases: set[str]) -> int:
    """Drop quarantine entries whose raw line names ``user_id`` exactly (escapes decoded), or names no user and holds
    one of ``phrases``; the file is replaced atomically."""
    if not path.exists():
        return 0
    keep: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for line in lines:
        try:
            raw = str(json.loads(line).get("raw", ""))
        except (ValueError, AttributeError):
            raw = line
        named = _named_users(raw)
        texts = [t for t in map(_decoded, _JSON_STRING.findall(raw)) if t is not None] + [raw]
        theirs = user_id in named or (not named and any(p in t for p in phrases for t in texts))
        if not theirs:
            keep.append(line)
    if len(keep) == len(lines):
        return 0
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(keep)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(lines) - len(keep)
