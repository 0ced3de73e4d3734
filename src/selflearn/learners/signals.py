"""Implicit and explicit defect signals per turn, from logs alone (no gold, no labels).

A user who interrupts, rephrases, repeats, gives up right after a failure or says "no" is telling the assistant the
previous turn went wrong. Each signal is a column; ``defect_score`` combines them as a noisy-OR, and a per-form
component lets many users' weak evidence add up: a form that many users rephrase is a defect even when one user's
own signal is weak. Everything is vectorised in Polars (one sort, window shifts, group-bys).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import polars as pl
from rapidfuzz import fuzz, process

from selflearn.home import Home
from selflearn.learners.base import Artifact, Evidence, Logs
from selflearn.text import with_normalized

NO_RESULT_STATUSES = ("no_match", "no_entity", "failed", "ignored")
NEGATIVE_FEEDBACK = ("no", "correction", "unsatisfied")
META_STATUSES = ("feedback", "teach")  # turns that talk about the assistant, not to it
# A whole utterance that only says "that was wrong" (it is feedback on the previous turn, not a request).
NEGATION = (
    r"^(ugh )?(no|nope|wrong|not really|not that|that's wrong|that is wrong|that's not (it|what i (asked|said|meant))"
    r"|no (that's|that is|it) (wrong|not it|not what i (asked|said|meant)|didn't))$"
)
SIGNAL_COLUMNS = ("barge_in", "rephrased", "repeated", "abandoned", "explicit_negative", "no_result")


@dataclass(frozen=True)
class SignalWeights:
    """How much each signal alone says "this turn was a defect" (noisy-OR terms in [0, 1])."""

    barge_in: float = 0.45
    """Weight of a barge-in; alone it is ambiguous: people also cut off long answers that were right."""
    rephrased: float = 0.6
    """Weight of a rephrase by the next turn."""
    repeated: float = 0.5
    """Weight of a word-for-word repeat by the next turn."""
    abandoned: float = 0.5
    """Weight of the user giving up after it."""
    explicit_negative: float = 0.9
    """Weight of the user saying it was wrong."""
    no_result: float = 0.8
    """Weight of a request ending with no result (not understood, no entity, failed)."""
    unsupported: float = 0.2
    """Weight of a request understood but not supported here."""
    form: float = 0.6
    """Weight of a wording that usually fails, across users (its shrunk defect rate)."""


@dataclass(frozen=True)
class SignalConfig:
    rephrase_window_s: float = 30.0
    """A follow-up later than this is a new request, not a repair."""
    abandon_window_s: float = 120.0
    """No follow-up within this after a failure: the user gave up."""
    similarity_min: float = 0.5
    """rapidfuzz token_set_ratio / 100 for a follow-up to count as a rephrase."""
    barge_in_flag: Literal["interrupted", "interrupting"] = "interrupted"
    """Which turn carries Turn.barge_in."""
    threshold: float = 0.5
    """Defect = defect_score >= threshold."""
    form_prior: float = 3.0
    """Pseudo-count shrinking a rare form's defect rate towards the global rate."""
    weights: SignalWeights = field(default_factory=SignalWeights)
    """How much each signal says alone."""


SIGNALS_FILE = Path("signals.json")


@dataclass(frozen=True)
class Signals(Artifact):
    """The signals' artifact: the settings the set's turns were scored with; ``apply`` scores turns with them."""

    config: SignalConfig
    """Windows, weights and threshold of the scoring."""
    turns: int = 0
    """Turns scored when it was learned."""
    defects: int = 0
    """Of them, called defects."""

    marker: ClassVar[Path] = SIGNALS_FILE
    """The file whose presence in an artifact set means this artifact is there (``find``)."""

    def save(self, root: Path) -> None:
        (root / SIGNALS_FILE).write_text(json.dumps(asdict(self), indent=1, sort_keys=True))

    @classmethod
    def load(cls, root: Path) -> Signals:
        raw = json.loads((root / SIGNALS_FILE).read_text())
        config = raw["config"] | {"weights": SignalWeights(**raw["config"]["weights"])}
        return cls(SignalConfig(**config), raw["turns"], raw["defects"])

    def apply(self, logs: Logs) -> pl.DataFrame:
        """The turns with the signal columns (``DefectSignals.score_frame``), ``turn_id`` first."""
        scored = DefectSignals(self.config).score(logs)
        return scored.select("turn_id", pl.exclude("turn_id"))

    def summary(self) -> dict[str, Any]:
        return {"turns": self.turns, "defects": self.defects}


class DefectSignals:
    """``DefectSignals(config).fit(logs) -> Signals``; ``score`` / ``score_frame`` for the scored turns."""

    name: ClassVar[str] = "signals"
    """The learner's name in ``LearnConfig.learners`` and in the learn report."""

    def __init__(self, config: SignalConfig | None = None):
        self.config = config or SignalConfig()

    def fit(self, logs: Logs) -> Signals:
        scored = evidence(logs, self.config).scored
        return Signals(self.config, scored.height, int(scored["defect"].sum()) if scored.height else 0)

    def score(self, logs: Logs) -> pl.DataFrame:
        return self.score_frame(logs.turns(), logs.feedback())

    def score_frame(self, turns: pl.DataFrame, feedback: pl.DataFrame | None = None) -> pl.DataFrame:
        """The turns (every input column kept), sorted by user and time, with the signal columns added."""
        c = self.config
        w = c.weights
        df = with_next_turn(turns, c)
        negative_ids = _negative_feedback_ids(feedback)
        failed = pl.col("result_status").is_in(NO_RESULT_STATUSES)
        if c.barge_in_flag == "interrupted":
            barge = pl.col("barge_in")
        else:
            barge = pl.col("next_barge_in").fill_null(False) & pl.col("quick_next")
        df = df.with_columns(
            barge_in_signal=barge,
            no_result=failed,
            explicit_negative=pl.col("explicit_feedback").is_in(NEGATIVE_FEEDBACK).fill_null(False)
            | pl.col("turn_id").is_in(negative_ids.implode())
            | pl.col("negated"),
            repeated=pl.col("quick_next") & (pl.col("form") == pl.col("next_form")),
            rephrased=pl.col("quick_next")
            & (pl.col("form") != pl.col("next_form"))
            & ((pl.col("similarity") >= c.similarity_min) | failed),
        )
        unhelpful = pl.col("result_status") != "success"
        troubled = failed | pl.col("explicit_negative") | (pl.col("barge_in_signal") & unhelpful)
        ends = pl.col("gap_s").is_null() | (pl.col("gap_s") > c.abandon_window_s)
        df = df.with_columns(abandoned=troubled & ends)
        request = ~pl.col("meta")  # a bare "no" is evidence about the previous turn, never a defect itself
        df = df.with_columns(
            [(pl.col(name) & request).alias(name) for name in ("barge_in_signal", *SIGNAL_COLUMNS[1:])]
        )
        turn_score = _noisy_or(
            [
                (pl.col("barge_in_signal"), w.barge_in),
                (pl.col("rephrased"), w.rephrased),
                (pl.col("repeated"), w.repeated),
                (pl.col("abandoned"), w.abandoned),
                (pl.col("explicit_negative"), w.explicit_negative),
                (pl.col("no_result"), w.no_result),
                (pl.col("result_status") == "unsupported", w.unsupported),
            ]
        )
        df = df.with_columns(turn_score=pl.when(pl.col("meta")).then(0.0).otherwise(turn_score))
        mean_score = df["turn_score"].mean() if df.height else 0.0
        prior_mean = float(mean_score) if isinstance(mean_score, int | float) else 0.0
        df = df.with_columns(
            form_rate=(pl.col("turn_score").sum().over("form") + c.form_prior * prior_mean)
            / (pl.len().over("form") + c.form_prior),
            form_users=pl.col("user_id").filter(pl.col("turn_score") >= c.threshold).n_unique().over("form"),
        )
        score = 1.0 - (1.0 - pl.col("turn_score")) * (1.0 - w.form * pl.col("form_rate"))
        score = pl.when(pl.col("meta")).then(0.0).otherwise(score)
        return df.with_columns(defect_score=score, defect=score >= c.threshold).rename(
            {"barge_in": "barge_in_flag", "barge_in_signal": "barge_in"}
        )


def text_similarity(a: pl.Series, b: pl.Series) -> pl.Series:
    """Pairwise rapidfuzz token-set ratio in [0, 1]: the one text similarity every rephrase rule compares with its
    ``similarity_min``."""
    ratios = process.cpdist(a.to_list(), b.to_list(), scorer=fuzz.token_set_ratio, workers=-1)
    return pl.Series("similarity", ratios, dtype=pl.Float64) / 100.0


def with_next_turn(turns: pl.DataFrame, config: SignalConfig) -> pl.DataFrame:
    """Sort by user and time; add the form, whether the turn is meta (feedback, teaching, a bare "no, that's
    wrong"), the user's next request turn (id, form, status, gap; meta turns skipped and given none), the pair's
    text similarity, and whether a negation followed within the rephrase window."""
    df = with_normalized(turns.sort(["user_id", "ts", "turn_id"]), "asr_text", "form")
    df = df.with_columns(
        meta=pl.col("result_status").is_in(META_STATUSES) | pl.col("form").str.contains(NEGATION),
    )
    same_user = pl.col("user_id").shift(-1) == pl.col("user_id")
    gap = (pl.col("ts").shift(-1) - pl.col("ts")).dt.total_microseconds() / 1e6
    df = df.with_columns(
        negated=(
            same_user & (gap <= config.rephrase_window_s) & pl.col("form").shift(-1).str.contains(NEGATION)
        ).fill_null(False)
    )
    requests = df.filter(~pl.col("meta")).select(
        "turn_id",
        next_turn_id=pl.when(same_user).then(pl.col("turn_id").shift(-1)),
        next_form=pl.when(same_user).then(pl.col("form").shift(-1)),
        next_status=pl.when(same_user).then(pl.col("result_status").shift(-1)),
        next_barge_in=pl.when(same_user).then(pl.col("barge_in").shift(-1)),
        gap_s=pl.when(same_user).then(gap),
    )
    df = df.join(requests, on="turn_id", how="left", maintain_order="left")
    pairs = df.select("form", "next_form").unique().filter(pl.col("next_form").is_not_null())
    pairs = pairs.with_columns(similarity=text_similarity(pairs["form"], pairs["next_form"]))
    return df.join(pairs, on=["form", "next_form"], how="left", maintain_order="left").with_columns(
        pl.col("similarity").fill_null(0.0),
        quick_next=(pl.col("gap_s") <= config.rephrase_window_s).fill_null(False),
    )


def _negative_feedback_ids(feedback: pl.DataFrame | None) -> pl.Series:
    if feedback is None or feedback.height == 0:
        return pl.Series("turn_id", [], dtype=pl.String)
    return feedback.filter(pl.col("kind").is_in(("no", "correction")))["turn_id"]


def _noisy_or(terms: list[tuple[pl.Expr, float]]) -> pl.Expr:
    keep = pl.lit(1.0)
    for flag, weight in terms:
        keep = keep * (1.0 - weight * flag.fill_null(False).cast(pl.Float64))
    return 1.0 - keep


def evidence(logs: Logs, config: SignalConfig | None = None, homes: Sequence[Home] = ()) -> Evidence:
    """``logs`` as ``Evidence``: as they are when a run already scored them, else scored here (no links)."""
    if isinstance(logs, Evidence):
        return logs
    return Evidence(logs, DefectSignals(config).score(logs), None, tuple(homes))
