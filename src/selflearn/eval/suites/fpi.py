"""Eval suite ``fpi``: failure-point isolation vs gold, learned model against the rule baseline and an annotator.

The world is the shipped homes plus homes from the seeded generator (``generate_homes(n, seed)``): the shipped homes
alone give about one irrecoverable ``result`` failure in 10 test days, the generated homes (tastes the home file
leaves out, so "play some music" gets the wrong genre) give enough to measure the class. ``--home`` replaces the
world with that one home. Both systems see only logs: the learned model is fitted on the training days' weak labels
(no gold), then both label the unseen test days. ``no_speaker.*``: the same model trained without the voice
evidence (``FpiConfig.speaker``), for a home whose speaker recognition cannot tell a television from a guest.
``--quick`` simulates the shipped homes only (a smoke test: too few ``result`` turns to measure that class).
``agreement_vs_annotator`` is the model's accuracy divided by the simulated single annotator's accuracy, all three
scored against one reference on the same turns (``score_systems``); ``baseline`` holds the same metrics for the rule
system, plus the annotator's (``annotator_*``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support

from selflearn.eval.harness import EvalConfig, EvalResult, suite
from selflearn.eval.suites.labels import FULL_DAYS, QUICK_DAYS, SimSplit, simulate_split
from selflearn.gold import fpi_reference as reference
from selflearn.home import Home, load_home, shipped_homes
from selflearn.learners.fpi import FPI_CLASSES, FpiLearner
from selflearn.learners.fpi_rules import FpiConfig, RuleFpi
from selflearn.learners.labels.dialogue import dialogue_frame
from selflearn.schema import Gold

logger = logging.getLogger(__name__)

GENERATED_HOMES = (0, 24)  # (quick, full): generated homes simulated beside the shipped ones


def classification_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """accuracy, macro_f1 (over the classes present in the reference) and per-class precision/recall/F1."""
    labels = [c for c in FPI_CLASSES if (truth == c).any()]
    p, r, f, _ = precision_recall_fscore_support(truth, pred, labels=list(FPI_CLASSES), zero_division=0)
    out = {
        "accuracy": float((truth == pred).mean()),
        "macro_f1": float(f1_score(truth, pred, labels=labels, average="macro", zero_division=0)),
    }
    for i, c in enumerate(FPI_CLASSES):
        out[f"precision.{c}"] = float(p[i])
        out[f"recall.{c}"] = float(r[i])
        out[f"f1.{c}"] = float(f[i])
        out[f"support.{c}"] = int((truth == c).sum())
    return out


def fpi_world(config: EvalConfig) -> list[Home]:
    """The homes the suite simulates: ``--home`` alone, else the shipped homes plus seeded generated ones."""
    from selflearn.sim import generate_homes

    if config.home:
        return [load_home(config.home)]
    return [*shipped_homes(), *generate_homes(GENERATED_HOMES[0 if config.quick else 1], config.seed)]


@suite("fpi")
def run(config: EvalConfig) -> EvalResult:
    train_days, test_days = QUICK_DAYS if config.quick else FULL_DAYS
    return score_split(simulate_split(config, train_days, test_days, fpi_world(config)), FpiConfig(seed=config.seed))


def score_systems(golds: Sequence[Gold], systems: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Every system and the simulated single annotator, scored against one reference on the same turns.

    The reference is ``reference(gold)``; the annotator's label is ``reference(gold, "single")``, the same rule
    applied to their own goal-success and stage labels (a recovered turn they saw as recovered is ``correct`` for
    them too). Turns the annotator left unlabelled are left out for everyone. ``systems[name]`` holds one label per
    gold record; the result maps each name, plus ``"annotator"``, to ``classification_metrics`` with
    ``agreement_vs_annotator`` (its accuracy / the annotator's).
    """
    truth = np.array([reference(g) for g in golds])
    single = np.array([reference(g, "single") for g in golds])
    rows = single != ""
    out = {name: classification_metrics(truth[rows], pred[rows]) for name, pred in systems.items()}
    out["annotator"] = classification_metrics(truth[rows], single[rows])
    annotator_acc = out["annotator"]["accuracy"]
    for metrics in out.values():
        metrics["agreement_vs_annotator"] = metrics["accuracy"] / max(annotator_acc, 1e-9)
        metrics["n"] = int(rows.sum())
    return out


def score_split(split: SimSplit, fpi_cfg: FpiConfig) -> EvalResult:
    """Fit the model on the training days' weak labels, score model, rules and the annotator on the test days."""
    from selflearn.learners.signals import DefectSignals

    train, test = split.train_logs(), split.test_logs()
    signals = DefectSignals()
    logger.info(f"training FPI model on {len(split.train_turns)} turns")
    model = FpiLearner(fpi_cfg).fit(train, signals.score(train))
    frame = model.prepare(dialogue_frame(test.turns(), signals.score(test)))
    golds = [split.gold[t] for t in frame["turn_id"].to_list()]
    pred, _ = model.predict(frame)
    rule, _ = RuleFpi(fpi_cfg).predict(frame)
    blind = FpiLearner(replace(fpi_cfg, speaker=False)).fit(train, signals.score(train))
    blind_pred, _ = blind.predict(blind.prepare(dialogue_frame(test.turns(), signals.score(test))))
    scores = score_systems(golds, {"model": pred, "rules": rule, "no_speaker": blind_pred})
    metrics, baseline, annotator_scores = scores["model"], scores["rules"], scores["annotator"]
    baseline.pop("n")
    baseline["annotator_accuracy"] = annotator_scores["accuracy"]
    baseline["annotator_macro_f1"] = annotator_scores["macro_f1"]
    baseline.update({f"annotator_f1.{c}": annotator_scores[f"f1.{c}"] for c in FPI_CLASSES})
    metrics["weak_labels"] = model.n_train
    metrics.update({f"no_speaker.{k}": scores["no_speaker"][k] for k in ("accuracy", "macro_f1", "f1.false_wake")})
    return EvalResult(n=int(metrics.pop("n")), metrics=metrics, baseline=baseline)
