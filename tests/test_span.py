from __future__ import annotations

import polars as pl
import pytest

from selflearn.learners.signals import DefectSignals
from selflearn.learners.span import PairEncoder, SpanConfig, SpanLearner, repaired_words, weak_labels
from selflearn.sim.synthlogs import generate
from selflearn.text import tokens


def test_repaired_words_from_alignment() -> None:
    assert repaired_words(tokens("turn on the kitchen lite"), tokens("turn on the kitchen light")) == (4, 4)
    assert repaired_words(tokens("porch fan on please"), tokens("turn on the porch fan")) == (2, 3)
    assert repaired_words(tokens("play jazz"), tokens("Play jazz!")) is None


def test_weak_labels_come_from_signals_only() -> None:
    turns, _ = generate(3000, seed=5)
    labelled = weak_labels(DefectSignals().score_frame(turns), SpanConfig(max_pairs=400))
    assert set(labelled["label"].unique()) == {0.0, 1.0}
    assert labelled.height <= 400
    assert (labelled["form"] != labelled["next_form"]).all()


@pytest.fixture(scope="module")
def encoder() -> PairEncoder:
    return PairEncoder(max_len=32)


def test_span_model_on_a_tiny_set(encoder: PairEncoder) -> None:
    turns, _ = generate(600, seed=7)
    model = SpanLearner(SpanConfig(max_pairs=80, epochs=25, batch_size=16, max_len=32), encoder=encoder).fit_frame(
        DefectSignals().score_frame(turns)
    )
    pairs = pl.DataFrame(
        {
            "form": ["turn on the kitchen plum", "turn on the kitchen plug"],
            "next_form": ["turn on the kitchen plug", "turn off the porch fan"],
            "gap_s": [4.0, 20.0],
            "similarity": [0.9, 0.2],
        }
    )
    repair, unrelated = model.predict_proba(pairs)
    assert repair > 0.5 > unrelated
    assert model.spans(["turn on the kitchen plum"], ["turn on the kitchen plug"]) == ["plum"]


@pytest.mark.slow
def test_span_model_learns_rephrases_and_repaired_spans(encoder: PairEncoder) -> None:
    turns, truth = generate(1200, seed=6)
    scored = DefectSignals().score_frame(turns)
    model = SpanLearner(SpanConfig(max_pairs=160, epochs=20, max_len=32), encoder=encoder).fit_frame(scored)
    predicted = scored.select("turn_id", "next_turn_id").with_columns(is_rephrase=model.predict_next(scored))
    gold = predicted.join(truth.rename({"turn_id": "next_turn_id"}), on="next_turn_id", how="left").select(
        "is_rephrase", gold=(pl.col("is_rephrase_of") == pl.col("turn_id")).fill_null(False)
    )
    tp = int((gold["is_rephrase"] & gold["gold"]).sum())
    precision = tp / max(int(gold["is_rephrase"].sum()), 1)
    recall = tp / int(gold["gold"].sum())
    assert precision > 0.8 and recall > 0.8
    spans = model.spans(
        ["turn on the garage lite", "turn off the den tea"], ["turn on the garage light", "turn off the den tv"]
    )
    assert spans == ["lite", "tea"]
