from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selflearn import safejson

_scalars = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
)
_text = st.text(alphabet=st.sampled_from('ab"\\[]{}:, \n\u00e9'), max_size=8)
_values = st.recursive(
    _scalars | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=30,
)


def _true_depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_true_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_true_depth(v) for v in value), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(_values, st.sampled_from([(",", ":"), (", ", ": "), (" , ", " : ")]), st.booleans())
def test_depth_on_the_bytes_equals_the_parsed_depth(value: object, separators: tuple[str, str], ascii_: bool) -> None:
    text = json.dumps(value, separators=separators, ensure_ascii=ascii_).encode()
    assert safejson.depth(text) == _true_depth(value)
    assert safejson.too_deep(text, 2) == (_true_depth(value) > 2)


@pytest.mark.parametrize("n", [1_000, sys.getrecursionlimit() * 3, 150_000])
def test_deep_text_is_refused_before_parsing(n: int) -> None:
    with pytest.raises(safejson.JsonLimitError, match=f"nested {n + 1} levels deep"):
        safejson.loads('{"a":' + "[" * n + "]" * n + "}")
    assert safejson.loads('{"a":"' + "[" * n + '"}') == {"a": "[" * n}  # brackets in a string are text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"a":1,"a":2}', "duplicate key 'a'"),
        ('{"a":{"b":[{"c":1,"c":1}]}}', "duplicate key 'c'"),
        ('{"a":NaN}', "NaN is not a JSON number"),
        ('{"a":-Infinity}', "-Infinity is not a JSON number"),
        ('{"a":1e400}', "out of range"),
        ('{"a":18446744073709551616}', "out of 64-bit range"),
        ('{"a":' + "9" * 5_000 + "}", "out of 64-bit range"),
        ('{"a":', "bad JSON"),
        ("x" * (safejson.MAX_BYTES + 1), "bytes"),
    ],
)
def test_strict_loads_refuses_what_json_lets_pass(text: str, reason: str) -> None:
    with pytest.raises(safejson.JsonLimitError, match=reason):
        safejson.loads(text)


def test_check_bounds_values_built_in_python() -> None:
    assert safejson.check({"b": [1, 2.5], "a": "é"}) == '{"a":"é","b":[1,2.5]}'
    deep: object = {}
    for _ in range(safejson.MAX_DEPTH):
        deep = {"x": deep}
    with pytest.raises(safejson.JsonLimitError, match="levels deep"):
        safejson.check(deep)
    for bad in ({"x": float("nan")}, {"x": 2**64}, {"x": "\ud800"}, {"x": "y" * safejson.MAX_CHARS}, {1: 2}):
        with pytest.raises(safejson.JsonLimitError):
            safejson.check(bad)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_text, _values, min_size=1, max_size=4), st.booleans(), st.booleans())
def test_duplicate_keys_are_found_however_the_text_is_spelled(value: dict, duplicate: bool, spaced: bool) -> None:  # type: ignore[type-arg]
    text = json.dumps(value, separators=(", ", " : ") if spaced else (",", ":"))
    if duplicate:
        key = json.dumps(next(iter(value)))
        text = text[:-1] + ("," if text != "{}" else "") + f"{key}:0}}"
    assert safejson.has_duplicate_keys(text.encode()) == duplicate
