"""Validated ids: an id from logs or a request becomes part of a path only through ``path_part``."""

from __future__ import annotations

import re

_SAFE = re.compile(r"[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]{0,127}")


def path_part(value: str) -> str:
    """``value`` unchanged if it is safe as one path component (letters, digits, ``_.@+-``, not starting with a
    dot, at most 128 characters); otherwise a one-line ``ValueError``."""
    if not _SAFE.fullmatch(value):
        raise ValueError(f"id {value[:40]!r} cannot name a file (allowed: letters, digits, _.@+-, no leading dot)")
    return value
