"""Benchmarks behind ``selflearn bench labels`` and ``selflearn bench fpi`` (throughput on synthetic logs at scale).

The simulator runs the full pipeline per utterance, too slow to make 100k dialogues for a benchmark, so these use
``synthlogs`` (same Turn schema, vectorised). Each bench reports a baseline measured in the same run: defect-signal
scoring for the label model, the rule system for FPI.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import polars as pl

from selflearn.learners.fpi import FpiLearner
from selflearn.learners.fpi_rules import FpiConfig, RuleFpi
from selflearn.learners.labels.dialogue import dialogue_frame
from selflearn.learners.labels.encoder import TextEncoder, default_encoder
from selflearn.learners.labels.features import turn_table
from selflearn.learners.labels.learner import LabelConfig, LabelLearner, _texts
from selflearn.learners.signals import DefectSignals
from selflearn.schema import ARROW_SCHEMAS, Feedback, Turn
from selflearn.sim.synthlogs import generate
from selflearn.store.logview import LogView

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


def synthetic_dialogues(dialogues: int, seed: int) -> pl.DataFrame:
    """Turns of exactly ``dialogues`` synthetic dialogues."""
    turns, _truth = generate(int(dialogues * 1.4) + 10, seed=seed)
    keep = turns["dialogue_id"].unique(maintain_order=True).head(dialogues)
    return turns.filter(pl.col("dialogue_id").is_in(keep.implode()))


def _logs(turns: pl.DataFrame) -> LogView:
    return LogView(turns.to_arrow().cast(ARROW_SCHEMAS[Turn]), ARROW_SCHEMAS[Feedback].empty_table())


def bench_labels(
    dialogues: int, *, seed: int = 0, encoder: TextEncoder | None = None, progress: Progress | None = None
) -> dict[str, float]:
    say = progress or logger.info
    turns = synthetic_dialogues(dialogues, seed)
    logs = _logs(turns)
    say(f"{dialogues} dialogues, {turns.height} turns: scoring defect signals (baseline)")
    start = time.perf_counter()
    signals = DefectSignals().score(logs)
    signal_s = time.perf_counter() - start
    encoder = encoder or default_encoder()
    say("embedding distinct texts (cached on disk)")
    start = time.perf_counter()
    encoder.encode(_texts(turn_table(logs.turns(), signals)))
    embed_s = time.perf_counter() - start
    say("training (pretraining + fine-tuning)")
    model = LabelLearner(LabelConfig(seed=seed), encoder=encoder).fit(logs, signals)
    say("inference (context features + model + slot spans)")
    start = time.perf_counter()
    labels = model.label_table(turn_table(turns, signals))
    infer_s = time.perf_counter() - start
    return {
        "dialogues": dialogues,
        "turns": turns.height,
        "distinct_texts": model.history.texts,
        "embed_seconds": embed_s,
        "train_seconds": model.history.seconds,
        "train_goal_seconds": 600.0,
        "inference_turns_per_s": labels.height / infer_s,
        "inference_goal_turns_per_s": 5000.0,
        "baseline_signals_turns_per_s": turns.height / signal_s,
        "inference_vs_signals": (labels.height / infer_s) / (turns.height / signal_s),
    }


def bench_fpi(dialogues: int, *, seed: int = 0, progress: Progress | None = None) -> dict[str, float]:
    say = progress or logger.info
    turns = synthetic_dialogues(dialogues, seed)
    logs = _logs(turns)
    signals = DefectSignals().score(logs)
    say(f"{dialogues} dialogues, {turns.height} turns: training")
    start = time.perf_counter()
    model = FpiLearner(FpiConfig(seed=seed)).fit(logs, signals)
    train_s = time.perf_counter() - start
    say("applying the model and the rule baseline")
    start = time.perf_counter()
    model.predict(model.prepare(dialogue_frame(turns, signals)))
    model_s = time.perf_counter() - start
    start = time.perf_counter()
    RuleFpi().predict(model.prepare(dialogue_frame(turns, signals)))
    rule_s = time.perf_counter() - start
    return {
        "dialogues": dialogues,
        "turns": turns.height,
        "train_seconds": train_s,
        "dialogues_per_min": dialogues / model_s * 60.0,
        "goal_dialogues_per_min": 50_000.0,
        "baseline_rule_dialogues_per_min": dialogues / rule_s * 60.0,
        "model_vs_rule": rule_s / model_s,
    }
