"""The failure-point rule baseline (``RuleFpi``) and the stage read off the diff to a recovering rephrase.

Both label turns from log evidence alone: their confident calls are the weak labels ``FpiLearner`` trains on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from selflearn.learners.labels.dialogue import FAILED_STATUSES

NEAR_REPEAT = 0.8
TASTE_GAP = 0.3  # share of an intent's failed turns whose rephrase spelled out a slot this turn leaves open


@dataclass(frozen=True)
class FpiConfig:
    confident: float = 0.75
    """Rule calls at least this confident become weak training labels."""
    asr_low: float = 0.6
    """ASR confidence below this points at ASR."""
    max_iter: int = 200
    """Boosting iterations of the classifier."""
    learning_rate: float = 0.1
    """Shrinkage of each boosting step."""
    balance: float = 0.5
    """Class weight = (n / n_class) ** balance: 0 = none, 1 = fully balanced."""
    threads: int = 1
    """OpenMP threads for boosting; more only helps on an idle machine (spin-waits under load)."""
    speaker: bool = True
    """Use the voice evidence (``speaker_success``); False: the ablation without a speaker id."""
    seed: int = 0
    """Seed of the classifier's randomness."""


class RuleFpi:
    """The transparent baseline: an ordered rule list, first match wins; each rule states its confidence.

    Needs ``command_overlap`` (``with_overlap``) for the false-wake rule: a one-turn dialogue nobody followed up,
    not understood, in words the assistant's successful commands rarely use, was most likely not meant for it; and
    ``slot_gap`` / ``recovered_same`` (``with_slot_evidence``) for the result rules: an entity-less "which team?"
    (``no_entity`` with nothing named, the intent has a gap slot) or an objected success that leaves open a slot
    people add when rephrasing the same intent was understood and resolved, but the assistant filled in what the
    person left to it wrongly.
    """

    def __init__(self, config: FpiConfig | None = None):
        self.config = config or FpiConfig()

    def rules(self) -> list[tuple[pl.Expr, str, float]]:
        status = pl.col("result_status")
        low_asr = pl.col("asr_confidence") < self.config.asr_low
        return [
            (status.is_in(("ignored", "unsupported", "feedback", "teach")) | pl.col("is_negation"), "correct", 0.9),
            (~pl.col("defect_evidence"), "correct", 0.85),
            (pl.col("recovered") & ~pl.col("recovered_same"), "correct", 0.8),
            ((status == "no_match") & (pl.col("n_turns") == 1) & (pl.col("command_overlap") < 0.5), "false_wake", 0.6),
            (low_asr, "asr", 0.8),
            ((status == "no_entity") & (pl.col("n_slots") == 0) & (pl.col("slot_gap") >= TASTE_GAP), "result", 0.8),
            (status == "no_entity", "er", 0.8),
            (status == "failed", "result", 0.85),
            (status == "no_match", "nlu", 0.7),
            ((status == "success") & (pl.col("slot_gap") >= TASTE_GAP), "result", 0.75),
            ((pl.col("next_sim") >= NEAR_REPEAT) & (pl.col("words_removed") > 0), "asr", 0.6),
            ((pl.col("next_intent") != pl.col("nlu_intent")).fill_null(False), "nlu", 0.6),
            (pl.col("diff_in_slots") > 0, "er", 0.6),
            (pl.lit(True), "er", 0.5),  # carried out, yet the user objected: most often the wrong device
        ]

    def predict(self, df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Labels and confidences for every row of a ``dialogue_frame`` with ``command_overlap``."""
        label: Any = None
        conf: Any = None
        for cond, name, confidence in reversed(self.rules()):
            cond = cond.fill_null(False)
            label = pl.lit(name) if label is None else pl.when(cond).then(pl.lit(name)).otherwise(label)
            conf = pl.lit(confidence) if conf is None else pl.when(cond).then(pl.lit(confidence)).otherwise(conf)
        out = df.select(label=label, conf=conf)
        return out["label"].to_numpy().astype(str), out["conf"].to_numpy().astype(np.float32)


def diff_stage(df: pl.DataFrame, config: FpiConfig) -> np.ndarray:
    """Stage read off the diff to the rephrase that recovered a failed turn ("" where there is none).

    Near-verbatim repeat with changed words, or a one-off wording next to a working command (``one_off_near``):
    the user said the same thing, so ASR misheard. Different intent in the successful rephrase: NLU. Same intent,
    same entities, and the rephrase spells out a slot the turn left to the assistant ("find me korean food"): the
    result (a taste filled wrongly). Same intent, no entity found, different entities, or the same action redone:
    ER (the wrong device). A failed execution: the result. A "recovery" by the identical request
    (``recovered_same``) is none, and has no diff to read.
    """
    idx = df["recovered_by"].to_numpy()
    defect = df["defect_evidence"].to_numpy() & (idx >= 0)
    if "recovered_same" in df.columns:
        defect &= ~df["recovered_same"].to_numpy()
    intents = df["nlu_intent"].fill_null("").to_numpy()
    entities = df["resolved_entities"].to_numpy()
    status = df["result_status"].to_numpy()
    asr = df["asr_confidence"].to_numpy()
    sim = df["next_sim"].fill_null(0.0).fill_nan(0.0).to_numpy()
    removed = df["words_removed"].to_numpy()
    slots = df["n_slots"].fill_null(0.0).to_numpy()
    misheard = df["one_off_near"].to_numpy() if "one_off_near" in df.columns else np.zeros(len(df), bool)
    out = np.full(len(df), "", dtype=object)
    for i in np.flatnonzero(defect):
        j = idx[i]
        if asr[i] < config.asr_low or (sim[i] >= NEAR_REPEAT and removed[i] > 0) or misheard[i]:
            out[i] = "asr"
        elif intents[i] != intents[j]:
            out[i] = "nlu"
        elif slots[j] > slots[i] and entities[i] == entities[j]:
            out[i] = "result"
        elif status[i] in ("no_entity", "success") or entities[i] != entities[j]:
            out[i] = "er"
        elif status[i] in FAILED_STATUSES:
            out[i] = "result"
    return out.astype(str)
