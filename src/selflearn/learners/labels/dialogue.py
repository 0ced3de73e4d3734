"""Per-turn dialogue context from logs alone: what came before and after a turn, and whether the user recovered.

Both the label model and failure-point isolation need the *extended* dialogue context (was the turn rephrased, what
changed in the rephrase, did a later attempt succeed). Computing it once, vectorised over a polars frame of turns
(the ``LogView`` schema), keeps both fast enough for 100k dialogues. Nothing here reads gold.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import polars as pl
from rapidfuzz import fuzz, process

from selflearn.text import normalize_expr

FAILED_STATUSES = ("no_match", "no_entity", "failed")
NEUTRAL_STATUSES = ("unsupported", "feedback", "teach", "ignored")
NEGATIVE_FEEDBACK = ("no", "correction", "unsatisfied")
REPHRASE_SIMILARITY = 0.5
REPHRASE_GAP_S = 60.0
NEGATION_PREFIX = (
    r"^(no|nope|not that|wrong|that's wrong|that is wrong|that's not it|that's not what i (asked|said|meant|wanted)"
    r"|ugh|stop|cancel)\b"
)


def _similarity(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    if len(a) == 0:
        return np.zeros(0, dtype=np.float32)
    return process.cpdist(list(a), list(b), scorer=fuzz.token_sort_ratio, workers=1).astype(np.float32) / 100.0


def _word_diff(texts: Sequence[str], nexts: Sequence[str | None], slots: Sequence[str]) -> tuple[list[int], ...]:
    """Words removed/added by the following turn, and whether a removed word was part of a recognised slot value."""
    removed, added, in_slots = [], [], []
    for text, nxt, slot_json in zip(texts, nexts, slots, strict=True):
        if nxt is None:
            removed.append(0)
            added.append(0)
            in_slots.append(0)
            continue
        a, b = set(text.split()), set(nxt.split())
        gone = a - b
        removed.append(len(gone))
        added.append(len(b - a))
        values = " ".join(str(v).lower() for v in json.loads(slot_json or "{}").values()) if slot_json else ""
        in_slots.append(int(any(w in values for w in gone)))
    return removed, added, in_slots


def chain_end(dialogue: np.ndarray, success: np.ndarray, rephrase_next: np.ndarray) -> np.ndarray:
    """Row index of the ``success`` row that a chain of rephrases from this turn ends in, or -1 (not recovered)."""
    n = len(dialogue)
    out = np.full(n, -1, dtype=np.int64)
    for i in range(n - 2, -1, -1):
        if dialogue[i] == dialogue[i + 1] and rephrase_next[i]:
            out[i] = i + 1 if success[i + 1] else out[i + 1]
    return out


def dialogue_frame(turns: pl.DataFrame, signals: pl.DataFrame | None = None) -> pl.DataFrame:
    """Turns sorted by dialogue and time, with context columns (``pos``, ``next_sim``, ``recovered``, …).

    ``signals`` is the output of ``signals.DefectSignals.score`` (joined on ``turn_id`` when given): its
    ``rephrased`` and ``defect`` columns strengthen the log-only rephrase and defect evidence computed here.
    """
    df = turns.sort(["dialogue_id", "ts", "turn_id"]).with_columns(
        text=normalize_expr(pl.col("asr_text").fill_null(""))
    )
    # "no", "that's wrong": a statement about the previous turn, not a request of its own
    df = df.with_columns(
        is_negation=pl.col("text").str.contains(NEGATION_PREFIX) & (pl.col("text").str.len_chars() < 40)
    )
    over = "dialogue_id"
    df = df.with_columns(
        pos=pl.int_range(pl.len()).over(over),
        n_turns=pl.len().over(over),
        prev_text=pl.col("text").shift(1).over(over),
        next_text=pl.col("text").shift(-1).over(over),
        next_status=pl.col("result_status").shift(-1).over(over),
        next_intent=pl.col("nlu_intent").shift(-1).over(over),
        next_feedback=pl.col("explicit_feedback").shift(-1).over(over),
        next_barge_in=pl.col("barge_in").shift(-1).over(over),
        next_negation=pl.col("is_negation").shift(-1).over(over).fill_null(False),
        gap_next_s=(pl.col("ts").shift(-1).over(over) - pl.col("ts")).dt.total_milliseconds() / 1000.0,
        gap_prev_s=(pl.col("ts") - pl.col("ts").shift(1).over(over)).dt.total_milliseconds() / 1000.0,
        n_tokens=pl.col("text").str.split(" ").list.len().cast(pl.Float32),
        n_slots=pl.col("nlu_slots").str.count_matches(r'":').cast(pl.Float32),
    )
    texts = df["text"].to_list()
    nexts = df["next_text"].to_list()
    prevs = df["prev_text"].to_list()
    next_sim = _similarity(texts, [t or "" for t in nexts])
    next_sim[df["next_text"].is_null().to_numpy()] = np.nan
    prev_sim = _similarity(texts, [t or "" for t in prevs])
    prev_sim[df["prev_text"].is_null().to_numpy()] = np.nan
    removed, added, in_slots = _word_diff(texts, nexts, df["nlu_slots"].to_list())
    df = df.with_columns(
        next_sim=pl.Series(next_sim, dtype=pl.Float32),
        prev_sim=pl.Series(prev_sim, dtype=pl.Float32),
        words_removed=pl.Series(removed, dtype=pl.Float32),
        words_added=pl.Series(added, dtype=pl.Float32),
        diff_in_slots=pl.Series(in_slots, dtype=pl.Float32),
    )
    if signals is not None:
        sig = signals.select("turn_id", sig_rephrased="rephrased", sig_defect="defect")
        df = df.join(sig, on="turn_id", how="left")
    else:
        df = df.with_columns(sig_rephrased=pl.lit(None, pl.Boolean), sig_defect=pl.lit(None, pl.Boolean))
    negative = pl.col("explicit_feedback").is_in(NEGATIVE_FEEDBACK).fill_null(False)
    next_negative = pl.col("next_feedback").is_in(NEGATIVE_FEEDBACK).fill_null(False)
    quick = pl.col("gap_next_s").fill_null(1e9) <= REPHRASE_GAP_S
    df = df.with_columns(
        rephrase_next=~pl.col("next_negation")
        & (
            (
                (pl.col("next_sim").fill_nan(0.0).fill_null(0.0) >= REPHRASE_SIMILARITY)
                | ((pl.col("next_intent") == pl.col("nlu_intent")).fill_null(False) & pl.col("next_text").is_not_null())
            )
            & quick
            | pl.col("sig_rephrased").fill_null(False)
        ),
        negative=negative | next_negative | pl.col("next_negation"),
    )
    # the next turn is about the same goal: a rephrase, a "no" about this turn, or the retry after a "no"
    df = df.with_columns(
        link_next=pl.col("rephrase_next") | (pl.col("next_negation") & quick) | (pl.col("is_negation") & quick)
    )
    df = df.with_columns(
        defect_evidence=~pl.col("is_negation")
        & (
            pl.col("result_status").is_in(FAILED_STATUSES)
            | pl.col("barge_in")
            | pl.col("negative")
            | (pl.col("rephrase_next") & ~pl.col("result_status").is_in(NEUTRAL_STATUSES))
            | pl.col("sig_defect").fill_null(False)
        ),
    )
    clean = (pl.col("result_status") == "success") & ~pl.col("defect_evidence")
    df = df.with_columns(clean_success=clean)
    recovered_by = chain_end(df["dialogue_id"].to_numpy(), df["clean_success"].to_numpy(), df["link_next"].to_numpy())
    return df.with_columns(recovered_by=pl.Series(recovered_by), recovered=pl.Series(recovered_by >= 0))
