from __future__ import annotations

import polars as pl
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from selflearn.text import normalize, normalize_expr, tokens


@pytest.mark.parametrize(
    ("raw", "form"),
    [
        ("Turn ON the kitchen-light!", "turn on the kitchen light"),
        ("What's  the weather?", "what's the weather"),
        ("'quoted' word", "quoted word"),
        ("it\u2019s 5.30", "it's 5 30"),
        ("  ", ""),
        ("ÉCLAIR Café", "éclair café"),
    ],
)
def test_normalize(raw: str, form: str) -> None:
    assert normalize(raw) == form


def test_tokens() -> None:
    assert tokens("Play  some JAZZ, please") == ["play", "some", "jazz", "please"]
    assert tokens("?!") == []


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=40))
@example("0''0")  # a run of apostrophes between words: found by hypothesis
def test_polars_expression_matches_python(text: str) -> None:
    got = pl.DataFrame({"t": [text]}).select(f=normalize_expr(pl.col("t")))["f"][0]
    assert got == normalize(text)


@given(st.text(max_size=40))
def test_normalize_is_idempotent(text: str) -> None:
    assert normalize(normalize(text)) == normalize(text)
