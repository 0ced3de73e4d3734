"""Eval suite ``signals``: log-only defect signals and rephrase detection against the simulator's gold.

Gold defect (exact definition): a turn whose gold ``failure_point`` is not ``"correct"`` and whose gold
``is_impossible`` is false (asking for something the home cannot do, and being told so, is not a defect).
``precision/recall/f1``: ``DefectSignals().defect`` vs gold defect over all turns; ``baseline.*``: the same for a
barge-in-only detector. ``curve.threshold_T.*``: the tunable threshold; ``f1_no_form``: without the per-form
(cross-user) component; ``signal.NAME.*``: each signal alone.

Rephrases: a gold rephrase pair is (``is_rephrase_of``, turn). Candidate pairs are each turn with the same user's
next request turn; ``pairs.window_Ws.recall/precision``: how many gold pairs are candidates within W seconds, and
how many candidates are gold pairs (the time-threshold curve). ``rephrase_*_baseline``: the rule detector (timing +
rapidfuzz); ``rephrase_*_model``: the MiniLM span model, trained on these logs' weak labels (signals + alignment,
never gold; transductive, as the nightly learner would be), predicting on the same candidate pairs. Gold pairs that
are not candidates count as misses for both.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import polars as pl

from selflearn.eval.harness import EvalConfig, EvalResult, suite
from selflearn.gold import defect_expr
from selflearn.home import load_home
from selflearn.learners.mining import MiningConfig, baseline_rephrase
from selflearn.learners.signals import SIGNAL_COLUMNS, DefectSignals, SignalConfig, SignalWeights
from selflearn.schema import Gold, to_arrow
from selflearn.store.logview import LogView

logger = logging.getLogger(__name__)

WINDOWS_S = (5, 10, 20, 30, 60, 120)
THRESHOLDS = (0.3, 0.5, 0.7, 0.9)


def prf(predicted: pl.Series, truth: pl.Series) -> dict[str, float]:
    tp = int((predicted & truth).sum())
    p = tp / max(int(predicted.sum()), 1)
    r = tp / max(int(truth.sum()), 1)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def gold_defects(gold: pl.DataFrame) -> pl.DataFrame:
    return gold.select("turn_id", gold_defect=defect_expr(impossible=False))


def rephrase_scores(scored: pl.DataFrame, is_rephrase: pl.Series, gold: pl.DataFrame) -> dict[str, float]:
    """Precision/recall/f1 of per-turn "the next turn rephrases this one" calls vs gold ``is_rephrase_of`` pairs."""
    links = gold.filter(pl.col("is_rephrase_of").is_not_null()).select(
        pl.col("is_rephrase_of").alias("turn_id"), pl.col("turn_id").alias("next_turn_id"), gold_pair=pl.lit(True)
    )
    calls = scored.select("turn_id", "next_turn_id").with_columns(call=is_rephrase.fill_null(False))
    joined = calls.join(links, on=["turn_id", "next_turn_id"], how="left").with_columns(
        pl.col("gold_pair").fill_null(False)
    )
    tp = int((joined["call"] & joined["gold_pair"]).sum())
    p = tp / max(int(joined["call"].sum()), 1)
    r = tp / max(links.height, 1)
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


@suite("signals")
def run(config: EvalConfig) -> EvalResult:
    from selflearn.learners.span import SpanConfig, SpanLearner
    from selflearn.sim import generate_homes
    from selflearn.sim.run import simulate

    if config.home:
        homes, days = [load_home(config.home)], 4 if config.quick else 8
    else:
        homes, days = generate_homes(8 if config.quick else 32, config.seed), 2 if config.quick else 3
    logs = simulate(homes, days=days, seed=config.seed)
    turns = [t for log in logs for t in log.turns]
    feedback = [f for log in logs for f in log.feedback]
    gold = pl.from_arrow(to_arrow([g for log in logs for g in log.gold], Gold))
    assert isinstance(gold, pl.DataFrame)
    logger.info(f"signals: {len(turns):,} simulated turns over {days} days")
    view = LogView.from_records(turns, feedback)
    scored = DefectSignals().score(view)
    truth = scored.select("turn_id").join(gold_defects(gold), on="turn_id", how="left")["gold_defect"]
    metrics: dict[str, float] = dict(prf(scored["defect"], truth))
    metrics["gold_defect_rate"] = int(truth.sum()) / max(scored.height, 1)
    metrics["defect_rate"] = int(scored["defect"].sum()) / max(scored.height, 1)
    no_form = SignalConfig(weights=replace(SignalWeights(), form=0.0))
    metrics["f1_no_form"] = prf(DefectSignals(no_form).score(view)["defect"], truth)["f1"]
    for threshold in THRESHOLDS:
        called = scored["defect_score"] >= threshold
        for name, value in prf(called, truth).items():
            metrics[f"curve.threshold_{threshold}.{name}"] = value
    for signal in SIGNAL_COLUMNS:
        for name, value in prf(scored[signal], truth).items():
            metrics[f"signal.{signal}.{name}"] = value

    gold_pairs = gold.filter(pl.col("is_rephrase_of").is_not_null()).height
    for window in WINDOWS_S:
        candidate = (scored["gap_s"] <= window).fill_null(False)
        within = rephrase_scores(scored, candidate, gold)
        metrics[f"pairs.window_{window}s.recall"] = within["recall"]
        metrics[f"pairs.window_{window}s.precision"] = within["precision"]
    metrics["gold_rephrase_pairs"] = gold_pairs
    for name, value in rephrase_scores(scored, baseline_rephrase(scored, MiningConfig()), gold).items():
        metrics[f"rephrase_{name}_baseline"] = value
    logger.info("signals: training the span rephrase model on weak labels")
    span = SpanConfig(max_pairs=400, epochs=25, seed=config.seed) if config.quick else SpanConfig(seed=config.seed)
    model = SpanLearner(span).fit_frame(scored)
    metrics["span_train_pairs"] = model.train_pairs
    for name, value in rephrase_scores(scored, model.predict_next(scored), gold).items():
        metrics[f"rephrase_{name}_model"] = value
    baseline = prf(scored["barge_in"], truth)
    return EvalResult(n=scored.height, metrics=metrics, baseline=baseline)
