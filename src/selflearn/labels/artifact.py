"""The label model and the FPI model as part of the nightly artifact set (``selflearn learn --labels``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from selflearn.fpi import FPI_DIR, FpiLearner, FpiModel
from selflearn.labels.learner import LabelLearner, LabelModel, TurnLogs

logger = logging.getLogger(__name__)

LABELS_DIR = "labels"


def fit_label_artifacts(
    logs: TurnLogs, signals: pl.DataFrame, progress: Callable[[str], None] | None = None
) -> tuple[Callable[[Path], None], dict[str, Any]]:
    """Train both models on the logs (weak labels only); returns the artifact writer and a report summary."""
    say = progress or logger.debug
    say("training the label model (pretraining + multi-task fine-tuning)")
    labels = LabelLearner().fit(logs, signals)
    say("training the failure-point model")
    fpi = FpiLearner().fit(logs, signals)

    def save(root: Path) -> None:
        labels.save(root / LABELS_DIR)
        fpi.save(root / FPI_DIR)

    summary = {
        "labels": {
            "dialogues": labels.history.dialogues,
            "turns": labels.history.turns,
            "seconds": round(labels.history.seconds, 2),
            "pretrain_swap_accuracy": labels.history.pretrain_swap_accuracy[-1:],
            "threshold": labels.config.threshold,
        },
        "fpi": {"weak_labels": fpi.n_train, "by_class": fpi.weak_label_counts},
    }
    return save, summary


def load_label_artifacts(root: Path) -> tuple[LabelModel | None, FpiModel | None]:
    """The published models of an artifact set (None where the set has none)."""
    labels = LabelModel.load(root / LABELS_DIR) if (root / LABELS_DIR).exists() else None
    fpi = FpiModel.load(root / FPI_DIR) if (root / FPI_DIR).exists() else None
    return labels, fpi
