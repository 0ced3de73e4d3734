"""Bounded, strict JSON for untrusted values: nesting and size are checked before anything is parsed.

Python's ``json`` and msgspec recurse once per nesting level, so a line of a few thousand ``[`` raises
``RecursionError``; ``json`` also accepts ``NaN``, turns ``1e400`` into infinity, takes duplicate keys silently (last
wins) and fails on integers of more than 4,300 digits. Every JSON value the store keeps (slots, entities, snapshots,
traces) passes ``check``, so whatever reads it back later, with plain ``json.loads`` and a recursive walk, works.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import numpy as np

MAX_DEPTH = 32  # nesting levels of one stored JSON value (an object of scalars is depth 1)
MAX_CHARS = 100_000  # canonical length of one stored JSON value
MAX_BYTES = 4 * MAX_CHARS  # JSON text given as a string (e.g. a Parquet cell) is refused unparsed above this
MIN_INT = -(2**63)  # integers must fit 64 bits (signed or unsigned), as msgspec and DuckDB read them
MAX_INT = 2**64 - 1

_decode_any = msgspec.json.Decoder().decode
_encode_any = msgspec.json.Encoder().encode
_OPEN = (ord("["), ord("{"))
_CLOSE = (ord("]"), ord("}"))
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


class JsonLimitError(ValueError):
    """A JSON value that is too deep, too big, not finite, or has a key twice; the message says which."""


def depth(text: bytes) -> int:
    """Nesting depth of JSON text without parsing it (brackets inside strings do not count).

    For text that is not valid JSON this is an upper bound of how deep a parser gets before it stops at the first
    error, which is what matters before handing the text to a recursive parser. Linear time, vectorised.
    """
    if b"[" not in text and b"{" not in text:
        return 0
    a = np.frombuffer(text, dtype=np.uint8)
    index = np.arange(a.size)
    last_plain = np.maximum.accumulate(np.where(a == ord("\\"), -1, index))  # last non-backslash at or before i
    backslashes_before = np.concatenate(([0], index[:-1] - last_plain[:-1]))
    quote = (a == ord('"')) & (backslashes_before % 2 == 0)
    outside = np.cumsum(quote) % 2 == 0
    step = (np.isin(a, _OPEN) & outside).astype(np.int32) - (np.isin(a, _CLOSE) & outside)
    return int(np.cumsum(step).max(initial=0))


def too_deep(text: bytes, limit: int) -> bool:
    """True if the JSON text nests deeper than ``limit``; counting brackets settles most texts without a scan."""
    return text.count(b"[") + text.count(b"{") > limit and depth(text) > limit


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        keys = [k for k, _ in pairs]
        twice = next(k for i, k in enumerate(keys) if k in keys[:i])
        raise JsonLimitError(f"duplicate key {twice!r}")
    return out


def _countable(text: bytes) -> bool:
    """No whitespace after a quote and no ``\\u`` escape: what counting keys needs (plain ``in``: C speed)."""
    return b"\\u" not in text and b'" ' not in text and b'"\t' not in text and b'"\n' not in text and b'"\r' not in text


def has_duplicate_keys(text: bytes) -> bool:
    """True if some object in this (depth-checked) JSON text names a key twice, or it is not JSON at all.

    Usually settled by counting, in C: every key is followed by ``":``, so unless the text has a space after a quote
    or a ``\\u`` escape (which re-encoding could respell), msgspec's re-encoding of the parsed text has as many
    ``":`` as the text exactly when no key was dropped. Otherwise it is parsed with a hook that sees every key.
    """
    if _countable(text):
        try:
            if text.count(b'":') == _encode_any(_decode_any(text)).count(b'":'):
                return False
        except (msgspec.MsgspecError, ValueError):
            pass
    try:
        _KEYS_ONLY.decode(text.decode("utf-8"))
    except ValueError:  # a duplicate key (JsonLimitError), or text that is not JSON
        return True
    return False


def _constant(name: str) -> Any:
    raise JsonLimitError(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonLimitError(f"number {text[:20]} out of range")
    return value


def _int(text: str) -> int:
    if len(text) > 21 or not MIN_INT <= (value := int(text)) <= MAX_INT:
        raise JsonLimitError(f"integer {text[:20]}... out of 64-bit range")
    return value


_KEYS_ONLY = json.JSONDecoder(object_pairs_hook=_unique)
_STRICT = json.JSONDecoder(object_pairs_hook=_unique, parse_constant=_constant, parse_float=_float, parse_int=_int)


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH, max_bytes: int = MAX_BYTES) -> Any:
    """Parse JSON text strictly: size and depth checked first, then no duplicate keys, NaN or out-of-range numbers.

    The result is not yet ``check``-ed (strings may hold lone surrogates, containers may exceed the size limit).
    """
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if len(data) > max_bytes:
        raise JsonLimitError(f"JSON text of {len(data):,} bytes (limit {max_bytes:,})")
    if too_deep(data, max_depth):
        raise JsonLimitError(f"JSON nested {depth(data)} levels deep (limit {max_depth})")
    try:
        return _STRICT.decode(text if isinstance(text, str) else text.decode("utf-8"))
    except JsonLimitError:
        raise
    except ValueError as e:  # JSONDecodeError, or invalid UTF-8 in bytes
        raise JsonLimitError(f"bad JSON: {e}") from e


def check(value: Any, *, max_depth: int = MAX_DEPTH, max_chars: int = MAX_CHARS) -> str:
    """The canonical JSON of a value that is within the limits (no recursion), else ``JsonLimitError``.

    Canonical means the one spelling ``schema.canonical_json`` writes: sorted keys, no spaces, UTF-8 as is.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list | tuple):
            if level > max_depth:
                raise JsonLimitError(f"JSON nested more than {max_depth} levels deep")
            if isinstance(item, dict) and not all(isinstance(k, str) for k in item):
                raise JsonLimitError("JSON object keys must be strings")
            items = item.values() if isinstance(item, dict) else item
            stack.extend((v, level + 1) for v in items if isinstance(v, dict | list | tuple | float | int))
        elif isinstance(item, float) and not math.isfinite(item):
            raise JsonLimitError(f"number {item} is not finite")
        elif isinstance(item, int) and not isinstance(item, bool) and not MIN_INT <= item <= MAX_INT:
            raise JsonLimitError("integer out of 64-bit range")
    try:
        encoded = _encode(value)
        encoded.encode("utf-8")  # a lone surrogate (from a ``\\ud800`` escape) has no UTF-8 spelling
    except (TypeError, ValueError) as e:
        raise JsonLimitError(f"not JSON: {e}") from e
    if len(encoded) > max_chars:
        raise JsonLimitError(f"JSON value of {len(encoded):,} characters (limit {max_chars:,})")
    return encoded
