"""Eval suite ``labels``: the label model's turn labels vs gold, against a simulated single human annotator.

Protocol: simulate ``train_days`` days (the learner sees their turns, feedback and defect signals — never gold), then
label ``test_days`` further, unseen days and compare with gold. The single-annotator baseline is the simulator's
``annotator_labels["single"]`` (gold flipped at a realistic error rate); the three-annotator majority is reported
alongside. ``pretrain_gain`` is the goal-success accuracy of the model minus that of the same model trained without
the contrastive pretraining stage (same seed, same fine-tuning budget).

Learning curve (``curve.<pct>.*``): the model fine-tuned on 1, 3, 10, 30 and 100% of the training dialogues' weak
labels, with pretraining (on all training dialogues: it needs no labels; pretrained once, then fine-tuned on each
share) and without; ``pretrain_gain_<pct>`` is the difference in goal-success accuracy. ``--quick`` runs 10 and 100%.

``no_signal.*``: the test turns nothing in the logs speaks against (no failure status, barge-in, "no" or rephrase:
``defect_evidence`` is false), where the weak labels can only say "success": the goal-success accuracy there of the
model, its weak labels (``baseline.no_signal.weak_*``) and the annotators (``baseline.no_signal.*``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import f1_score

from selflearn import progress
from selflearn.eval.harness import EvalConfig, EvalResult, suite
from selflearn.gold import annotator
from selflearn.home import Home, load_home, shipped_homes
from selflearn.schema import Feedback, Gold, Turn
from selflearn.store.logview import LogView
from selflearn.text import normalize

logger = logging.getLogger(__name__)

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
QUICK_DAYS = (10, 3)  # (train, test) simulated days; the shipped homes log ~80 turns a day
FULL_DAYS = (40, 10)
CURVE_SHARES = (0.01, 0.03, 0.1, 0.3, 1.0)  # learning curve: fine-tuning on this share of the dialogues only
QUICK_CURVE_SHARES = (0.1, 1.0)


@dataclass
class SimSplit:
    train_turns: list[Turn]
    """Turns the label model learns from."""
    train_feedback: list[Feedback]
    """Explicit feedback on them."""
    test_turns: list[Turn]
    """Held-out turns it is scored on."""
    test_feedback: list[Feedback]
    """Explicit feedback on those."""
    gold: dict[str, Gold]
    """Turn id -> its truth (scoring only)."""

    def train_logs(self) -> LogView:
        return LogView.from_records(self.train_turns, self.train_feedback)

    def test_logs(self) -> LogView:
        return LogView.from_records(self.test_turns, self.test_feedback)


def eval_homes(config: EvalConfig) -> list[Home]:
    return [load_home(config.home)] if config.home else list(shipped_homes())


def simulate_split(
    config: EvalConfig, train_days: int, test_days: int, homes: Sequence[Home] | None = None
) -> SimSplit:
    """Run the simulator; the first ``train_days`` days are for learning, the rest for scoring against gold.
    ``homes`` replaces ``eval_homes(config)`` for a suite that needs a larger world."""
    from selflearn.sim import Simulation

    sim = Simulation(list(homes) if homes is not None else eval_homes(config), seed=config.seed)
    split = SimSplit([], [], [], [], {})
    for day in progress.track(range(train_days + test_days), "labels: simulating days"):
        log = sim.run_day(day)
        logger.info(f"simulated day {day}: {len(log.turns)} turns")
        turns, feedback = (
            (split.train_turns, split.train_feedback)
            if day < train_days
            else (
                split.test_turns,
                split.test_feedback,
            )
        )
        turns.extend(log.turns)
        feedback.extend(log.feedback)
        split.gold.update({g.turn_id: g for g in log.gold})
    return split


def _slot_set(slots: dict[str, Any] | None) -> set[tuple[str, str]]:
    return {(k, normalize(str(v))) for k, v in (slots or {}).items()}


def slot_f1(pred: Sequence[dict[str, Any] | None], gold: Sequence[dict[str, Any]]) -> float:
    tp = fp = fn = 0
    for p, g in zip(pred, gold, strict=True):
        ps, gs = _slot_set(p), _slot_set(g)
        tp += len(ps & gs)
        fp += len(ps - gs)
        fn += len(gs - ps)
    return 2 * tp / max(1, 2 * tp + fp + fn)


def continues_goal(turn_ids: Sequence[str], dialogue_ids: Sequence[str], goal_of: dict[str, str]) -> np.ndarray:
    """Per turn: does it continue the previous turn's goal (same dialogue, same goal)? First turns: False."""
    out = np.zeros(len(turn_ids), dtype=bool)
    for i in range(1, len(turn_ids)):
        if dialogue_ids[i] == dialogue_ids[i - 1]:
            out[i] = goal_of[turn_ids[i]] == goal_of[turn_ids[i - 1]]
    return out


def score(frame: pl.DataFrame, pred_cont: np.ndarray, gold: dict[str, Gold]) -> dict[str, float]:
    """Label metrics of ``frame`` (turn_id, dialogue_id, pred_goal_success, intent, slots dict) against gold.

    ``goal_segmentation_f1`` is the F1 of "this turn continues the previous turn's goal" over non-first turns.
    """
    turn_ids = frame["turn_id"].to_list()
    dialogues = frame["dialogue_id"].to_list()
    golds = [gold[t] for t in turn_ids]
    g_cont = continues_goal(turn_ids, dialogues, {t: g.goal_id for t, g in zip(turn_ids, golds, strict=True)})
    later = np.array([i > 0 and dialogues[i] == dialogues[i - 1] for i in range(len(turn_ids))], dtype=bool)
    g_success = np.array([g.goal_success for g in golds])
    success = frame["pred_goal_success"].to_numpy().astype(bool)
    intents = frame["intent"].to_list()
    return {
        "goal_success_accuracy": float((success == g_success).mean()),
        "goal_success_f1": float(f1_score(g_success, success, average="macro", zero_division=0)),
        "intent_accuracy": float(np.mean([p == g.true_intent for p, g in zip(intents, golds, strict=True)])),
        "slot_f1": slot_f1(frame["slots"].to_list(), [g.true_slots for g in golds]),
        "goal_segmentation_f1": float(f1_score(g_cont[later], pred_cont[later], zero_division=0))
        if later.any()
        else 0.0,
    }


ANNOTATED = ("goal_success_accuracy", "goal_success_f1", "intent_accuracy")


def annotator_frame(frame: pl.DataFrame, gold: dict[str, Gold], who: str) -> pl.DataFrame:
    """The scoring frame filled with one simulated annotator's goal-success and intent labels.

    The simulator's annotators label goal success, intent and failure point only, so only the metrics in
    ``ANNOTATED`` get an annotator baseline (slots and segmentation are compared with the weak labels instead).
    """
    rows = []
    for turn_id, dialogue_id in frame.select("turn_id", "dialogue_id").iter_rows():
        g = gold[turn_id]
        success = annotator(g, who, "goal_success")
        rows.append(
            {
                "turn_id": turn_id,
                "dialogue_id": dialogue_id,
                "pred_goal_success": bool(g.goal_success if success is None else success),
                "intent": annotator(g, who, "intent"),
                "slots": {},
            }
        )
    schema = {"turn_id": pl.String, "dialogue_id": pl.String, "pred_goal_success": pl.Boolean, "intent": pl.String,
              "slots": pl.Object}  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def model_frame(labels: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """The label model's output (already in dialogue order) in the scoring shape."""
    frame = labels.select(
        "turn_id",
        "dialogue_id",
        "pred_goal_success",
        "intent",
        slots=pl.Series([json.loads(s) for s in labels["slots"].to_list()], dtype=pl.Object),
    )
    return frame, ~labels["goal_start"].to_numpy()


def operating_curve(labels: pl.DataFrame, gold: dict[str, Gold]) -> dict[str, float]:
    """Precision (goal-success accuracy on labelled turns) and coverage (share labelled) per threshold."""
    truth = np.array([gold[t].goal_success for t in labels["turn_id"].to_list()])
    pred = labels["pred_goal_success"].to_numpy()
    conf = labels["confidence"].to_numpy()
    out: dict[str, float] = {}
    for t in THRESHOLDS:
        keep = conf >= t
        out[f"precision_at_{t:.2f}"] = float((pred[keep] == truth[keep]).mean()) if keep.any() else 1.0
        out[f"coverage_at_{t:.2f}"] = float(keep.mean())
    return out


@suite("labels")
def run(config: EvalConfig) -> EvalResult:
    from selflearn.learners.labels.learner import LabelConfig, LabelLearner
    from selflearn.learners.signals import DefectSignals

    train_days, test_days = QUICK_DAYS if config.quick else FULL_DAYS
    split = simulate_split(config, train_days, test_days)
    train, test = split.train_logs(), split.test_logs()
    label_cfg = LabelConfig(seed=config.seed)
    if config.quick:
        label_cfg = replace(label_cfg, min_steps=150)
    signals = DefectSignals()
    train_signals, test_signals = signals.score(train), signals.score(test)
    logger.info(f"training label model on {len(split.train_turns)} turns")
    model = LabelLearner(label_cfg).fit(train, train_signals)
    labels = model.apply(test, test_signals)
    frame, cont = model_frame(labels)
    metrics = score(frame, cont, split.gold)
    labelled = labels.filter(pl.col("labelled"))
    truth = np.array([split.gold[t].goal_success for t in labelled["turn_id"].to_list()])
    metrics["precision_at_default"] = (
        float((labelled["pred_goal_success"].to_numpy() == truth).mean()) if labelled.height else 1.0
    )
    metrics["coverage_at_default"] = labelled.height / max(1, labels.height)
    metrics["default_threshold"] = model.config.threshold
    metrics.update(operating_curve(labels, split.gold))
    metrics["pretrain_swap_accuracy"] = model.history.pretrain_swap_accuracy[-1]
    metrics["train_seconds"] = model.history.seconds
    for share in QUICK_CURVE_SHARES if config.quick else CURVE_SHARES:
        pct = f"{share * 100:g}pct"
        logger.info(f"learning curve: fine-tuning on {pct} of the dialogues, with and without pretraining")
        acc = {}
        for pretrain in (True, False):
            if share == 1.0 and pretrain:
                learned = model
            else:
                cfg = replace(label_cfg, finetune_share=share, pretrain=pretrain)
                learner = LabelLearner(cfg, encoder=model.encoder, pretrained=model.pretrained)
                learned = learner.fit(train, train_signals)
            curve = score(*model_frame(learned.apply(test, test_signals)), split.gold)
            name = "pretrain" if pretrain else "plain"
            metrics.update({f"curve.{pct}.{name}.{k}": curve[k] for k in ("goal_success_accuracy", "intent_accuracy")})
            acc[pretrain] = curve["goal_success_accuracy"]
        metrics[f"pretrain_gain_{pct}"] = acc[True] - acc[False]
    metrics["pretrain_gain"] = metrics["pretrain_gain_100pct"]
    metrics["no_pretrain_goal_success_accuracy"] = metrics["curve.100pct.plain.goal_success_accuracy"]
    baseline = {k: v for k, v in score(annotator_frame(frame, split.gold, "single"), cont, split.gold).items()
                if k in ANNOTATED}  # fmt: skip
    majority = score(annotator_frame(frame, split.gold, "majority"), cont, split.gold)
    baseline.update({f"majority_{k}": v for k, v in majority.items() if k in ANNOTATED})
    weak = _weak_frame(test, test_signals)
    baseline.update({f"weak_{k}": v for k, v in score(*weak, split.gold).items()})
    quiet = set(weak[0].filter(~pl.col("defect_evidence"))["turn_id"].to_list())
    systems = {
        "model": frame,
        "weak": weak[0],
        "single": annotator_frame(frame, split.gold, "single"),
        "majority": annotator_frame(frame, split.gold, "majority"),
    }
    no_signal = {name: success_on(f, quiet, split.gold) for name, f in systems.items()}
    metrics["no_signal.n"] = len(quiet)
    metrics["no_signal.gold_failure_share"] = sum(not split.gold[t].goal_success for t in quiet) / max(1, len(quiet))
    metrics["no_signal.goal_success_accuracy"] = no_signal.pop("model")
    baseline["no_signal.weak_goal_success_accuracy"] = no_signal.pop("weak")
    baseline.update({f"no_signal.{k}_goal_success_accuracy": v for k, v in no_signal.items()})
    return EvalResult(n=labels.height, metrics=metrics, baseline=baseline)


def success_on(frame: pl.DataFrame, turn_ids: set[str], gold: dict[str, Gold]) -> float:
    """Goal-success accuracy of a scoring frame on the given turns only (1.0 when there are none)."""
    rows = frame.filter(pl.col("turn_id").is_in(sorted(turn_ids)))
    if not rows.height:
        return 1.0
    truth = np.array([gold[t].goal_success for t in rows["turn_id"].to_list()])
    return float((rows["pred_goal_success"].to_numpy() == truth).mean())


def _weak_frame(logs: LogView, signals: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """The weak labels themselves (what the model is trained on), scored as a reference."""
    from selflearn.learners.labels.features import turn_table

    table = turn_table(logs.turns(), signals).sort(["dialogue_id", "pos"])
    frame = table.select(
        "turn_id",
        "dialogue_id",
        "defect_evidence",
        pred_goal_success="w_success",
        intent=pl.coalesce("w_intent", "nlu_intent"),
        slots=pl.Series([json.loads(s or "{}") for s in table["nlu_slots"].to_list()], dtype=pl.Object),
    )
    return frame, ~table["w_boundary"].to_numpy()
