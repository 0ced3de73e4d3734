"""Utterance forms: one spelling per thing a user said, so logs from many users and days aggregate by form.

The online rewriter (H5) and the offline miner key the rewrite table by ``normalize(text)``; both sides must use
this one function or a learned rewrite never matches at run time.
"""

from __future__ import annotations

import re
import unicodedata

import polars as pl

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})
_NON_WORD = re.compile(r"[^\w\s']+")
_LOOSE_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")
_SPACES = re.compile(r"\s+")
# The same rules as regexes for Polars (Rust regex syntax has no look-behind, so apostrophes are handled by padding).
_PL_NON_WORD = r"[^\p{L}\p{N}_\s']+"


def normalize(text: str) -> str:
    """Lowercase, NFKC, drop punctuation (keeping in-word apostrophes: "what's"), collapse spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    text = _NON_WORD.sub(" ", text)
    text = _LOOSE_APOSTROPHE.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def normalize_expr(column: pl.Expr) -> pl.Expr:
    """``normalize`` as a vectorised Polars expression (same result for ordinary text, no Python per row)."""
    padded = (
        pl.lit(" ")
        + column.str.normalize("NFKC")
        .str.replace_all("[\u2019\u2018`\u00b4]", "'")
        .str.to_lowercase()
        .str.replace_all(_PL_NON_WORD, " ")
        .str.replace_all("''+", " ")
        .str.replace_all(r"\s+", "  ")
        + pl.lit(" ")
    )
    return (
        padded.str.replace_all(r"\s'+", " ")
        .str.replace_all(r"'+\s", " ")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def tokens(text: str) -> list[str]:
    """Words of the normalised form, the unit for alignment and span labels."""
    form = normalize(text)
    return form.split(" ") if form else []


def with_normalized(frame: pl.DataFrame, column: str, alias: str) -> pl.DataFrame:
    """``frame`` plus ``alias`` = ``normalize(column)``, computed once per distinct text (logs repeat utterances
    heavily, so this is much cheaper than running the regexes on every row)."""
    distinct = frame.select(pl.col(column).unique()).with_columns(normalize_expr(pl.col(column)).alias(alias))
    return frame.join(distinct, on=column, how="left", nulls_equal=True, maintain_order="left")
