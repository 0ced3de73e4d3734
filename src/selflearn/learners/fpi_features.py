"""Failure-point features: a turn's log, context and trace evidence as the float columns the classifier reads.

Also the evidence that needs the training logs (the command lexicon, slot gaps read from rephrases), which an
``FpiModel`` keeps so that new logs are featurised against what it was trained on.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from selflearn.learners.labels.dialogue import chain_end
from selflearn.learners.labels.trace import flatten_trace
from selflearn.schema import RESULT_STATUSES

STATUSES = RESULT_STATUSES
MIN_REPHRASES = 5  # an intent's slot gaps are only evidence once this many of its failed turns were rephrased


def _status_onehot(status: pl.Series, prefix: str) -> dict[str, np.ndarray]:
    values = status.fill_null("").to_numpy()
    return {f"{prefix}={s}": (values == s).astype(np.float32) for s in STATUSES}


def base_features(df: pl.DataFrame) -> dict[str, np.ndarray]:
    """Log and dialogue-context features of a ``dialogue_frame`` (no trace), as float columns."""

    def f(name: str) -> np.ndarray:
        return df[name].cast(pl.Float32).fill_null(np.nan).to_numpy().astype(np.float32)

    cols: dict[str, np.ndarray] = {
        "asr_confidence": f("asr_confidence"),
        "nlu_confidence": f("nlu_confidence"),
        "latency_ms": f("response_latency_ms"),
        "barge_in": f("barge_in"),
        "rewritten": df["rewritten_text"].is_not_null().cast(pl.Float32).to_numpy(),
        "has_intent": df["nlu_intent"].is_not_null().cast(pl.Float32).to_numpy(),
        "n_slots": f("n_slots"),
        "next_slots_added": df.select(pl.col("n_slots").shift(-1).over("dialogue_id") - pl.col("n_slots"))
        .to_series()
        .cast(pl.Float32)
        .fill_null(np.nan)
        .to_numpy()
        .astype(np.float32),
        "n_entities": df["resolved_entities"].str.count_matches(r'":').cast(pl.Float32).to_numpy(),
        "n_tokens": f("n_tokens"),
        "pos": f("pos"),
        "n_turns": f("n_turns"),
        "has_next": df["next_text"].is_not_null().cast(pl.Float32).to_numpy(),
        "next_sim": f("next_sim"),
        "prev_sim": f("prev_sim"),
        "gap_next_s": f("gap_next_s"),
        "next_barge_in": f("next_barge_in"),
        "intent_changed_next": (df["next_intent"] != df["nlu_intent"]).cast(pl.Float32).fill_null(np.nan).to_numpy(),
        "words_removed": f("words_removed"),
        "words_added": f("words_added"),
        "diff_in_slots": f("diff_in_slots"),
        "rephrase_next": f("rephrase_next"),
        "negative": f("negative"),
        "is_negation": f("is_negation"),
        "next_negation": f("next_negation"),
        "defect_evidence": f("defect_evidence"),
        "recovered": f("recovered"),
        "sig_defect": f("sig_defect"),
        "command_overlap": f("command_overlap"),
        "nearest_command": f("nearest_command"),
        "form_seen": f("form_seen"),
        "form_fail_share": f("form_fail_share"),
        "speaker_success": f("speaker_success"),
        "one_off_near": f("one_off_near"),
        "slot_gap": f("slot_gap"),
        "recovered_same": f("recovered_same"),
        "settled": f("settled"),
        "speaker_form_fail": f("speaker_form_fail"),
    }
    cols.update(_status_onehot(df["result_status"], "status"))
    cols.update(_status_onehot(df["next_status"], "next_status"))
    return cols


RECOVERY_FEATURES = ("recovered", "recovered_same", "settled")


def _keys(slots: str | None) -> set[str]:
    return set(json.loads(slots or "{}"))


def _devices(entities: str | None) -> list[str]:
    return sorted(json.loads(entities or "{}").get("devices") or [])


@dataclass
class SlotGaps:
    """Which slots people spell out when the assistant filled them itself, read from rephrases in the logs.

    For every intent: the share of its turns with defect evidence whose next turn (same intent, same resolved
    devices) adds a slot key, per key. "play some music" followed by "play some blues music" adds ``genre``, "put
    the game on" followed by "put the seahawks game on" adds ``team``: a taste the assistant guessed or asked for,
    not a device it got wrong (those rephrases change the devices) — the ``result`` stage.
    """

    shares: dict[str, dict[str, float]] = field(default_factory=dict)
    """Intent -> slot key -> share of its defective turns whose rephrase added that key."""
    speaker_forms: dict[str, tuple[int, int]] = field(default_factory=dict)
    """User id and text joined by a tab -> (turns, defective turns)."""

    @classmethod
    def from_frame(cls, df: pl.DataFrame) -> SlotGaps:
        """Gaps of a ``dialogue_frame`` (needs ``defect_evidence``)."""
        over = "dialogue_id"
        pairs = df.with_columns(
            next_slots=pl.col("nlu_slots").shift(-1).over(over),
            next_entities=pl.col("resolved_entities").shift(-1).over(over),
        ).filter(pl.col("defect_evidence") & (pl.col("next_intent") == pl.col("nlu_intent")).fill_null(False))
        tried: Counter[str] = Counter()
        added: Counter[tuple[str, str]] = Counter()
        for intent, slots, nxt, ents, next_ents in pairs.select(
            "nlu_intent", "nlu_slots", "next_slots", "resolved_entities", "next_entities"
        ).iter_rows():
            tried[intent] += 1
            if _devices(ents) == _devices(next_ents):
                added.update((intent, k) for k in _keys(nxt) - _keys(slots))
        shares: dict[str, dict[str, float]] = {}
        for (intent, key), n in added.items():
            if tried[intent] >= MIN_REPHRASES:
                shares.setdefault(intent, {})[key] = n / tried[intent]
        forms = df.group_by("user_id", "text").agg(n=pl.len(), bad=pl.col("defect_evidence").sum())
        return cls(shares, {f"{u}\t{t}": (int(n), int(b)) for u, t, n, b in forms.iter_rows()})

    def gap(self, intents: Sequence[str | None], slots: Sequence[str | None]) -> np.ndarray:
        """Per turn: the largest share among the intent's gap slots that the turn leaves open (0 when none)."""
        out = np.zeros(len(intents), dtype=np.float32)
        for i, (intent, s) in enumerate(zip(intents, slots, strict=True)):
            keys = self.shares.get(intent or "")
            if keys:
                have = _keys(s)
                out[i] = max((v for k, v in keys.items() if k not in have), default=0.0)
        return out


def with_slot_evidence(df: pl.DataFrame, gaps: SlotGaps, *, own: bool = False) -> pl.DataFrame:
    """Adds ``slot_gap`` (``SlotGaps.gap``), ``recovered_same``, ``settled`` and ``speaker_form_fail``.

    ``recovered_same``: the turn that "recovered" this one asked for the very same thing (intent, slots, devices)
    and got it: an identical request cannot fix what went wrong, the person gave up on a wrong result silently (the
    clean-looking last turn is no evidence of success). ``speaker_form_fail``: the share of this person's other
    turns with the same wording that had defect evidence (NaN under 2): a taste the assistant does not know fails
    every time, also when the person lets it go without a word. ``settled``: like ``recovered``, a chain of
    rephrases from this turn ends in a success, but one a barge-in may have cut short (nobody said "no" to it or
    rephrased it; people cut long right answers short), and not the identical request. ``own``: the rows are the
    logs ``gaps`` came from, so each row is taken out of its own counts.
    """
    mine = 1 if own else 0
    counts = [gaps.speaker_forms.get(f"{u}\t{t}", (0, 0)) for u, t in zip(df["user_id"], df["text"], strict=True)]
    n = np.array([c[0] for c in counts]) - mine
    bad = np.array([c[1] for c in counts]) - mine * df["defect_evidence"].to_numpy().astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        form_fail = np.where(n >= 2, bad / np.maximum(n, 1), np.nan)
    idx = df["recovered_by"].to_numpy()
    sig = list(zip(*(df[c].to_list() for c in ("nlu_intent", "nlu_slots", "resolved_entities")), strict=True))
    status = df["result_status"].to_list()
    same = [j >= 0 and status[i] == "success" and sig[j] == sig[i] for i, j in enumerate(idx)]
    uncontested = df.select(
        (pl.col("result_status") == "success")
        & ~pl.col("negative")
        & ~(pl.col("rephrase_next") & pl.col("next_text").is_not_null())
    ).to_series()
    ends = chain_end(df["dialogue_id"].to_numpy(), uncontested.to_numpy(), df["link_next"].to_numpy())
    settled = [j >= 0 and not (status[i] == "success" and sig[j] == sig[i]) for i, j in enumerate(ends)]
    return df.with_columns(
        slot_gap=pl.Series(gaps.gap(df["nlu_intent"].to_list(), df["nlu_slots"].to_list()), dtype=pl.Float32),
        recovered_same=pl.Series(same, dtype=pl.Boolean),
        settled=pl.Series(settled, dtype=pl.Boolean),
        speaker_form_fail=pl.Series(form_fail, dtype=pl.Float32).fill_nan(None),
    )


def command_lexicon(df: pl.DataFrame) -> list[str]:
    """Words of utterances the assistant carried out without complaint: what commands are made of, per the logs."""
    texts = df.filter(pl.col("clean_success"))["text"].to_list()
    return sorted({w for t in texts for w in t.split()})


def with_overlap(df: pl.DataFrame, lexicon: Sequence[str]) -> pl.DataFrame:
    """Adds ``command_overlap``: the share of a turn's words found in the command lexicon (chatter scores low)."""
    words = set(lexicon)
    overlap = [sum(w in words for w in ws) / len(ws) if (ws := t.split()) else 0.0 for t in df["text"].to_list()]
    return df.with_columns(command_overlap=pl.Series(overlap, dtype=pl.Float32))


def feature_matrix(df: pl.DataFrame, names: list[str]) -> np.ndarray:
    """``base_features`` plus the flattened trace values, in the column order of ``names`` (NaN where absent)."""
    base = base_features(df)
    traces = [flatten_trace(t) for t in df["trace"].to_list()]
    x = np.full((len(df), len(names)), np.nan, dtype=np.float32)
    for j, name in enumerate(names):
        if name in base:
            x[:, j] = base[name]
    trace_cols = {name: j for j, name in enumerate(names) if name.startswith("trace:")}
    for i, row in enumerate(traces):
        for key, value in row.items():
            col = trace_cols.get(f"trace:{key}")
            if col is not None:
                x[i, col] = value
    return x
