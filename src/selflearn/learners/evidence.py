"""Per-rule evidence stored with the rules ``learn`` publishes, so a person can judge a rule on what it did.

Besides the miner's support and distinct users: the distinct homes behind the rule's repair chains (the same chains
and outcome keys the miner counted), and the shadow check's held-out turns the rule fixed and broke — each replayed
turn counted for the rule that fired on it (``learn.shadow_turns``' ``rule_id``). A rule the shadow's candidate did
not have (mined only once the held-out day was in) has no shadow evidence (null), nor has any rule without a shadow
check or replay (no home configurations: the log-only estimate is not attributed); a candidate rule that fired on
no replayed turn has 0 / 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from selflearn.controls import rule_frame, rule_id
from selflearn.home import Home
from selflearn.learners.mining import MiningConfig, RewriteTables, chains, linked_requests
from selflearn.runtime.patterns import delexicalise_frame


def rule_evidence(
    tables: RewriteTables,
    scored: pl.DataFrame,
    is_rephrase: pl.Series | None,
    homes: Sequence[Home],
    config: MiningConfig,
    shadow: tuple[RewriteTables, pl.DataFrame] | None = None,
) -> RewriteTables:
    """``tables`` with ``EVIDENCE_SCHEMA`` columns: distinct homes from the chains of ``scored`` (linked as the miner
    links them), and fixes / breaks from ``shadow`` = (the shadow's candidate tables, its ``shadow_turns``)."""
    requests, links = linked_requests(scored, is_rephrase, config)
    lexical = chains(requests, links)
    patterns = chains(delexicalise_frame(requests, homes), links) if homes and tables.pattern_table.height else None
    replayed = shadow is not None and bool(shadow[1]["replayed"].any())
    counts = _shadow_counts(*shadow) if shadow is not None and replayed else None
    return RewriteTables(
        _with_shadow(_with_homes(tables.global_table, lexical), "global", counts),
        _with_shadow(_with_homes(tables.personal_table, lexical, personal=True), "personal", counts),
        _with_shadow(_with_homes(tables.pattern_table, patterns), "pattern", counts),
    )


def _with_homes(rules: pl.DataFrame, ch: pl.DataFrame | None, personal: bool = False) -> pl.DataFrame:
    """``distinct_homes``: homes of the chains from the rule's source to the outcome (intent + slots) its target
    wording reached — the miner's key for a rule's support (the target is that outcome's commonest wording)."""
    if ch is None or not rules.height:
        return rules.with_columns(distinct_homes=pl.lit(None, dtype=pl.Int64))
    by = ["user_id"] if personal else []
    repaired = ch.filter(pl.col("target").is_not_null()).select(
        *by, source="form", outcome="target", wording="target_form", home="home_id"
    )
    keys = rules.select(*by, "source", wording="target").join(
        repaired.select(*by, "source", "wording", "outcome").unique(), on=[*by, "source", "wording"]
    )
    counted = (
        keys.join(repaired.select(*by, "source", "outcome", "home"), on=[*by, "source", "outcome"])
        .group_by(*by, "source", "wording")
        .agg(distinct_homes=pl.col("home").n_unique().cast(pl.Int64))
        .rename({"wording": "target"})
    )
    return rules.join(counted, on=[*by, "source", "target"], how="left", nulls_equal=True, maintain_order="left")


def _shadow_counts(candidate: RewriteTables, replayed: pl.DataFrame) -> pl.DataFrame:
    """Per candidate rule (``rule_id``): the held-out turns it fixed and broke (0 when it fired on none)."""
    fired = (
        replayed.filter(pl.col("rule_id").is_not_null())
        .group_by("rule_id")
        .agg(shadow_fixes=pl.col("would_fix").sum(), shadow_breaks=pl.col("would_break").sum())
    )
    return (
        rule_frame(candidate)
        .select("rule_id")
        .unique()
        .join(fired, on="rule_id", how="left")
        .select("rule_id", pl.col("shadow_fixes", "shadow_breaks").fill_null(0.0).round().cast(pl.Int64))
    )


def _with_shadow(rules: pl.DataFrame, kind: str, counts: pl.DataFrame | None) -> pl.DataFrame:
    if counts is None:
        return rules.with_columns(shadow_fixes=pl.lit(None, dtype=pl.Int64), shadow_breaks=pl.lit(None, dtype=pl.Int64))
    keys = rules.select("source", "target", "user_id").iter_rows()
    ids = pl.Series("rule_id", [rule_id(kind, user, source, target) for source, target, user in keys], pl.String)
    return rules.with_columns(
        ids.to_frame().join(counts, on="rule_id", how="left", maintain_order="left").drop("rule_id")
    )
