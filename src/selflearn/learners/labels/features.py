"""Turn features and weak labels for the label model, from logs (and defect signals) only.

Weak labels, per turn, are what the logs imply without any annotator:

* goal boundary — a turn starts a new goal unless it rephrases the previous turn;
* goal success — the goal's last turn was a clean success (no failure status, barge-in, negative feedback, rephrase)
  or the user said "yes" to "did I get that right?", and the goal did not carry out the same request twice;
* intent and slots — those the NLU produced on the goal's successful turn (so a misunderstood first attempt gets
  the intent of the rephrase that worked); unknown (masked) for goals that never succeeded.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from selflearn.learners.labels.dialogue import dialogue_frame
from selflearn.schema import RESULT_STATUSES

STATUSES = RESULT_STATUSES
NO_INTENT = "<none>"
UNKNOWN = "<unk>"
SIGNAL_COLUMNS = ("rephrased", "repeated", "abandoned", "explicit_negative", "no_result", "defect_score")
NUMERIC = (
    "n_tokens",
    "asr_confidence",
    "nlu_confidence",
    "latency",
    "barge_in",
    "pos",
    "gap_prev",
    "next_sim",
    "prev_sim",
    "rephrase_next",
    "negative",
    "positive",
    "defect_evidence",
    "recovered",
    "repeated",
    "n_slots",
    *(f"sig_{c}" for c in SIGNAL_COLUMNS),
)


@dataclass
class Vocab:
    """String -> index maps for the categorical inputs and the intent/slot outputs, fixed at fit time."""

    domains: list[str] = field(default_factory=lambda: [UNKNOWN])
    """Device domains seen at fit time; index 0 is unknown."""
    intents: list[str] = field(default_factory=lambda: [UNKNOWN, NO_INTENT])
    """NLU intents seen at fit time, plus unknown and no-intent."""
    slots: list[str] = field(default_factory=list)
    """Slot names seen at fit time: the slot head's outputs."""

    @staticmethod
    def _index(values: list[str]) -> dict[str, int]:
        return {v: i for i, v in enumerate(values)}

    def encode(self, values: list[str], which: str) -> np.ndarray:
        index = self._index(getattr(self, which))
        return np.array([index.get(v, 0) for v in values], dtype=np.int64)


def _domain(entities_json: str) -> str:
    entities = json.loads(entities_json or "{}")
    for value in entities.values():
        item = value[0] if isinstance(value, list) and value else value
        if isinstance(item, dict) and isinstance(item.get("domain"), str):
            return str(item["domain"])
        if isinstance(item, str) and "." in item:
            return item.split(".", 1)[0]
    return UNKNOWN


def _slot_names(slots_json: str) -> list[str]:
    return sorted(json.loads(slots_json or "{}"))


def turn_table(turns: pl.DataFrame, signals: pl.DataFrame | None = None) -> pl.DataFrame:
    """``dialogue_frame`` plus weak labels (``w_*`` columns) and model inputs, one row per turn."""
    df = dialogue_frame(turns, signals)
    if signals is not None:
        present = [c for c in SIGNAL_COLUMNS if c in signals.columns]
        df = df.join(
            signals.select("turn_id", *(pl.col(c).cast(pl.Float32).alias(f"sig_{c}") for c in present)),
            on="turn_id",
            how="left",
        )
    over = "dialogue_id"
    df = df.with_columns(
        w_boundary=(pl.col("pos") == 0) | ~pl.col("link_next").shift(1).over(over).fill_null(False),
        domain=pl.Series([_domain(e) for e in df["resolved_entities"].to_list()], dtype=pl.String),
        positive=(pl.col("explicit_feedback") == "yes").fill_null(False)
        | (pl.col("next_feedback") == "yes").fill_null(False),
    )
    df = df.with_columns(w_goal=pl.col("w_boundary").cast(pl.Int32).cum_sum().over(over))
    goal = ["dialogue_id", "w_goal"]
    # The same request carried out twice in one goal (intent, slots and devices alike): the person asked again
    # because the first time did not do what they wanted, so the second cannot have either (tuning seed 7: all 17
    # such goals failed, every one a success by the rules below).
    ok = pl.col("result_status") == "success"
    request = pl.concat_str(
        [pl.col(c).fill_null("") for c in ("nlu_intent", "nlu_slots", "resolved_entities")], separator="\x1f"
    )
    df = df.with_columns(w_repeated=(ok & (ok.cast(pl.Int32).sum().over([*goal, request]) >= 2)).any().over(goal))
    # A success whose only evidence against it is ambiguous still counts: a barge-in (people cut off long right
    # answers) or a look-alike request in a later dialogue (people ask for similar things again). A "no" or a
    # rephrase within the dialogue still makes it a failure. Tuned on seed 7: weak goal-success accuracy 0.939 -> 0.958.
    rephrased_here = pl.col("rephrase_next") & pl.col("next_text").is_not_null()
    ambiguous_success = (pl.col("result_status") == "success") & ~rephrased_here
    df = df.with_columns(
        w_success=(
            ((pl.col("clean_success") | ambiguous_success) & ~pl.col("negative"))
            | pl.col("positive")
            | pl.col("result_status").eq("feedback")
        )
        .last()
        .over(goal)
        & ~pl.col("w_repeated"),
        anchor_intent=pl.col("nlu_intent").last().over(goal),
        anchor_slots=pl.col("nlu_slots").last().over(goal),
    )
    understood = pl.col("nlu_intent").is_not_null().any().over(goal)
    intent = (
        pl.when((pl.col("result_status") == "ignored") | pl.col("is_negation"))
        .then(pl.lit(NO_INTENT))
        .when(~pl.col("w_success") & ~understood)
        .then(pl.lit(NO_INTENT))  # never understood, never achieved: most often not a request (chatter, impossible)
        .when(pl.col("w_success") | pl.col("w_repeated"))  # a repeated request was understood, just not served
        .then(pl.col("anchor_intent"))
        .otherwise(None)
    )
    slots = pl.when(pl.col("w_success") | pl.col("w_repeated")).then(pl.col("anchor_slots")).otherwise(None)
    # Soft target: the hard call, graded by how strongly the signals speak about the goal (its last turn for a
    # success; its strongest defect for a failure, since a closing "no" has no defect score of its own), so the
    # model's confidence (and the operating threshold) can separate clear goals from ambiguous ones.
    score = pl.col("sig_defect_score").cast(pl.Float32) if "sig_defect_score" in df.columns else None
    soft = (
        pl.col("w_success").cast(pl.Float32)
        if score is None
        else pl.when(pl.col("w_success"))
        .then(0.5 + 0.5 * (1.0 - score.last().over(goal)))
        .otherwise(0.5 * (1.0 - score.max().over(goal)))
        .fill_null(pl.col("w_success").cast(pl.Float32))
    )
    # the "<none>" of a never-understood, never-achieved goal is a guess; the learner may replace it (see
    # ``learner.guess_intents``) with the intent of the most similar utterance that did succeed
    unsure = ~pl.col("w_success") & ~understood & (pl.col("result_status") != "ignored") & ~pl.col("is_negation")
    return df.with_columns(
        w_intent=intent, w_slots=slots, w_success_soft=soft, w_intent_unsure=unsure, repeated=pl.col("w_repeated")
    )


def build_vocab(table: pl.DataFrame, *, min_count: int = 2) -> Vocab:
    def frequent(series: pl.Series) -> list[str]:
        counts = series.drop_nulls().value_counts()
        return sorted(str(v) for v, c in counts.iter_rows() if c >= min_count and v not in (UNKNOWN, NO_INTENT))

    slot_names: set[str] = set()
    for s in table["w_slots"].drop_nulls().to_list():
        slot_names.update(_slot_names(s))
    return Vocab(
        domains=[UNKNOWN, *frequent(table["domain"])],
        intents=[UNKNOWN, NO_INTENT, *frequent(table["w_intent"])],
        slots=sorted(slot_names),
    )


def numeric_matrix(table: pl.DataFrame) -> np.ndarray:
    """The numerical inputs, scaled to roughly [-1, 1] by fixed transforms (no fitted scaler to keep in sync)."""

    def col(name: str) -> np.ndarray:
        if name not in table.columns:
            return np.zeros(table.height, dtype=np.float32)
        return table[name].cast(pl.Float32).fill_null(np.nan).fill_nan(np.nan).to_numpy().astype(np.float32)

    latency = np.log1p(np.clip(col("response_latency_ms"), 0, None)) / math.log(60_000)
    gap = np.log1p(np.clip(col("gap_prev_s"), 0, None)) / math.log(3600)
    values = {
        "n_tokens": col("n_tokens") / 10.0,
        "latency": latency,
        "pos": col("pos") / 10.0,
        "gap_prev": gap,
        "n_slots": col("n_slots") / 3.0,
    }
    out = np.stack([values[n] if n in values else col(n) for n in NUMERIC], axis=1)
    return np.nan_to_num(out, nan=-1.0).astype(np.float32)


@dataclass
class Batchable:
    """Per-dialogue padded arrays: the model's inputs and (when fitted) its weak targets."""

    dialogue_ids: list[str]
    """Dialogue id of each row, in order."""
    turn_ids: np.ndarray
    """(D, T) object, "" where padded."""
    mask: np.ndarray
    """(D, T) bool, True for real turns."""
    utter: np.ndarray
    """(D, T) int64 index into the text-embedding matrix."""
    resp: np.ndarray
    """(D, T) int64 index of the response text into the text-embedding matrix."""
    cat: np.ndarray
    """(D, T, 3) int64: domain, nlu intent, status."""
    num: np.ndarray
    """(D, T, F) float32 numerical turn features (``NUMERIC`` order)."""
    targets: dict[str, np.ndarray]
    """Head name -> its weak targets, per turn (absent before fitting)."""


def pad_dialogues(table: pl.DataFrame, vocab: Vocab, text_index: dict[str, int], *, max_turns: int) -> Batchable:
    """Pack turns into (dialogue, turn) arrays; longer dialogues keep their first ``max_turns`` turns."""
    table = table.filter(pl.col("pos") < max_turns)
    ids, first = np.unique(table["dialogue_id"].to_numpy(), return_index=True)
    order = np.argsort(first)
    d_index = {d: i for i, d in enumerate(ids[order])}
    d = np.array([d_index[x] for x in table["dialogue_id"].to_list()], dtype=np.int64)
    t = table["pos"].to_numpy().astype(np.int64)
    n_d, n_t = len(d_index), max(1, int(t.max()) + 1 if len(t) else 1)

    def grid(values: np.ndarray, fill: object, dtype: object) -> np.ndarray:
        out = np.full((n_d, n_t, *values.shape[1:]), fill, dtype=dtype)  # type: ignore[call-overload]
        out[d, t] = values
        return out

    utter = np.array([text_index[x] for x in table["text"].to_list()], dtype=np.int64)
    resp = np.array([text_index[x] for x in table["response_text"].fill_null("").to_list()], dtype=np.int64)
    cat = np.stack(
        [
            vocab.encode(table["domain"].to_list(), "domains"),
            vocab.encode(table["nlu_intent"].fill_null(NO_INTENT).to_list(), "intents"),
            np.array([STATUSES.index(s) if s in STATUSES else 0 for s in table["result_status"].to_list()]),
        ],
        axis=1,
    )
    targets: dict[str, np.ndarray] = {}
    if "w_boundary" in table.columns:
        intents = table["w_intent"].to_list()
        intent_index = vocab._index(vocab.intents)
        intent_y = np.array([-100 if i is None else intent_index.get(i, 0) for i in intents], dtype=np.int64)
        slot_index = vocab._index(vocab.slots)
        slot_y = np.zeros((table.height, len(vocab.slots)), dtype=np.float32)
        slot_known = table["w_slots"].is_not_null().to_numpy()
        for row, s in enumerate(table["w_slots"].to_list()):
            for name in _slot_names(s) if s is not None else []:
                if name in slot_index:  # a slot name first seen after fitting has no head
                    slot_y[row, slot_index[name]] = 1.0
        targets = {
            "boundary": grid(table["w_boundary"].to_numpy().astype(np.float32), 0.0, np.float32),
            "success": grid(table["w_success_soft"].to_numpy().astype(np.float32), 0.0, np.float32),
            "intent": grid(intent_y, -100, np.int64),
            "slots": grid(slot_y, 0.0, np.float32),
            "slots_known": grid(slot_known, False, bool),
        }
    return Batchable(
        dialogue_ids=[str(x) for x in ids[order]],
        turn_ids=grid(table["turn_id"].to_numpy().astype(object), "", object),
        mask=grid(np.ones(table.height, dtype=bool), False, bool),
        utter=grid(utter, 0, np.int64),
        resp=grid(resp, 0, np.int64),
        cat=grid(cat.astype(np.int64), 0, np.int64),
        num=grid(numeric_matrix(table), 0.0, np.float32),
        targets=targets,
    )
