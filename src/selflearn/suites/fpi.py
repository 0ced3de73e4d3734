"""Eval suite ``fpi``: failure-point isolation vs gold, learned model against the rule baseline and an annotator.

The world is the shipped homes plus homes from the seeded generator (``generate_homes(n, seed)``): the shipped homes
alone give about one irrecoverable ``result`` failure in 10 test days, the generated homes (tastes the home file
leaves out, so "play some music" gets the wrong genre) give enough to measure the class. ``--home`` replaces the
world with that one home. Both systems see only logs: the learned model is fitted on the training days' weak labels
(no gold), then both label the unseen test days. ``no_speaker.*``: the same model trained without the voice
evidence (``FpiConfig.speaker``), for a home whose speaker recognition cannot tell a television from a guest.
``--quick`` simulates the shipped homes only (a smoke test: too few ``result`` turns to measure that class).
``agreement_vs_annotator`` is the model's accuracy divided by the simulated single annotator's accuracy (goal:
>= 1.0); ``baseline`` holds the same metrics for the rule system, plus the annotator's.
"""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
from sklearn.metrics import f1_score, precision_recall_fscore_support

from selflearn.evaluate import EvalConfig, EvalResult, suite
from selflearn.fpi import FPI_CLASSES, FpiConfig, FpiLearner, RuleFpi
from selflearn.home import Home, load_home, shipped_homes
from selflearn.labels.dialogue import dialogue_frame
from selflearn.schema import Gold
from selflearn.suites.labels import FULL_DAYS, QUICK_DAYS, SimSplit, annotator, simulate_split

GENERATED_HOMES = (0, 24)  # (quick, full): generated homes simulated beside the shipped ones


def reference(gold: Gold, who: str | None = None) -> str:
    """The FPI label the issue defines, from the simulator's per-turn stage: a turn whose goal was eventually met
    had its error recovered, so it is ``correct``. ``who`` applies the same rule to an annotator's own labels."""
    if who is None:
        return "correct" if gold.goal_success else gold.failure_point
    success, stage = annotator(gold, who, "goal_success"), annotator(gold, who, "failure_point")
    if success is None or stage is None:
        return ""
    return "correct" if success else str(stage)


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


def score_split(split: SimSplit, fpi_cfg: FpiConfig) -> EvalResult:
    """Fit the model on the training days' weak labels, score model, rules and the annotator on the test days."""
    from selflearn.signals import DefectSignals

    train, test = split.train_logs(), split.test_logs()
    signals = DefectSignals()
    print(f"training FPI model on {len(split.train_turns)} turns", file=sys.stderr)
    model = FpiLearner(fpi_cfg).fit(train, signals.score(train))
    frame = model.prepare(dialogue_frame(test.turns(), signals.score(test)))
    truth = np.array([reference(split.gold[t]) for t in frame["turn_id"].to_list()])
    pred, _ = model.predict(frame)
    rule, _ = RuleFpi(fpi_cfg).predict(frame)
    metrics = classification_metrics(truth, pred)
    baseline = classification_metrics(truth, rule)
    single = np.array([annotator(split.gold[t], "single", "failure_point") or "" for t in frame["turn_id"].to_list()])
    annotated = single != ""
    annotator_acc = float((single[annotated] == truth[annotated]).mean()) if annotated.any() else 1.0
    metrics["agreement_vs_annotator"] = metrics["accuracy"] / max(annotator_acc, 1e-9)
    baseline["agreement_vs_annotator"] = baseline["accuracy"] / max(annotator_acc, 1e-9)
    baseline["annotator_accuracy"] = annotator_acc
    baseline["annotator_macro_f1"] = classification_metrics(truth[annotated], single[annotated])["macro_f1"]
    metrics["weak_labels"] = model.n_train
    blind = FpiLearner(replace(fpi_cfg, speaker=False)).fit(train, signals.score(train))
    blind_pred, _ = blind.predict(blind.prepare(dialogue_frame(test.turns(), signals.score(test))))
    ablation = classification_metrics(truth, blind_pred)
    metrics.update({f"no_speaker.{k}": ablation[k] for k in ("accuracy", "macro_f1", "f1.false_wake")})
    return EvalResult(n=len(truth), metrics=metrics, baseline=baseline)
