"""Failure-point isolation: for each turn, the earliest pipeline stage whose error the dialogue did not recover from.

Classes: ``false_wake``, ``asr``, ``nlu``, ``er``, ``result``, ``correct``. Errors the user recovered from within
the dialogue (a rephrase that then succeeded) are not failures, and impossible requests (``unsupported``) are not
defects: both are ``correct``.

Two systems, one interface (``predict(frame) -> labels, confidence``):

* ``RuleFpi`` — a transparent rule list over log features (status, confidences, the follow-up rephrase).
* ``FpiModel`` — scikit-learn ``HistGradientBoostingClassifier`` over log, context and trace features, trained by
  ``FpiLearner`` on weak labels only: the rule system's confident calls, plus stage labels read off the diff
  between a failed turn and the rephrase that later succeeded (a recovered turn is "correct", but the diff says
  which stage broke; the row is added a second time with its recovery hidden, labelled with that stage), and
  corpus-level labelling functions over ``labels/wording.py`` evidence (a one-off wording next to a working command
  was misheard; a voice that never issues a working command is not talking to the assistant).
  Gradient boosting fits tabular, mixed-scale, NaN-laden trace features without scaling or embeddings, trains in
  seconds and predicts ~1M rows/s — the dialogue model's embeddings would add little to stage attribution.
"""

from __future__ import annotations

import json
import pickle
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from selflearn.learners.base import Artifact, Evidence, Logs
from selflearn.learners.fpi_features import (
    RECOVERY_FEATURES,
    SlotGaps,
    base_features,
    command_lexicon,
    feature_matrix,
    with_overlap,
    with_slot_evidence,
)
from selflearn.learners.fpi_rules import TASTE_GAP, FpiConfig, RuleFpi, diff_stage
from selflearn.learners.labels.dialogue import dialogue_frame
from selflearn.learners.labels.trace import flatten_trace, trace_names
from selflearn.learners.labels.wording import WordingStats, with_wording
from selflearn.schema import FAILURE_POINTS

FPI_CLASSES = FAILURE_POINTS
UNKNOWN_VOICE = 0.1  # a speaker whose turns almost never work (a television) was not talking to the assistant
MISHEARD_NEAR = 0.85  # a failed wording this close to a working command, not a habit of the speaker's, was misheard
QUESTION_OVERLAP = 0.7  # a one-off request with fewer of its words in working commands is a question, not a command
SILENT_FAIL = 0.5  # a person's wording that failed at least this often elsewhere fails when nobody objects, too
FPI_DIR = Path("fpi")
MODEL_FILE = "fpi.pkl"
META_FILE = "fpi.json"


def _signals(logs: Logs, signals: pl.DataFrame | None) -> pl.DataFrame | None:
    """The scored turns to use: those given, else those of a run's ``Evidence`` (None: scored from the turns)."""
    return signals if signals is not None or not isinstance(logs, Evidence) else logs.scored


@dataclass
class FpiModel(Artifact):
    """The learned failure-point classifier plus the feature names it was trained on."""

    classifier: HistGradientBoostingClassifier
    """The fitted gradient-boosting classifier over ``feature_names``."""
    feature_names: list[str]
    """Column names of the feature matrix, in the order the classifier was trained on."""
    lexicon: list[str]
    """Words of utterances carried out without complaint in the training logs (the ``command_overlap`` feature)."""
    wording: WordingStats = field(default_factory=WordingStats)
    """Form and speaker counts from the training logs, for the wording features."""
    config: FpiConfig = field(default_factory=FpiConfig)
    """The settings it was trained with."""
    n_train: int = 0
    """Turns it was trained on."""
    weak_label_counts: dict[str, int] = field(default_factory=dict)
    """Failure point -> weak training labels the rules gave it."""
    gaps: SlotGaps = field(default_factory=SlotGaps)
    """Slot gaps read from the training logs' rephrases."""

    marker: ClassVar[Path] = FPI_DIR / MODEL_FILE
    """The file whose presence in an artifact set means this artifact is there (``find``)."""

    def prepare(self, df: pl.DataFrame) -> pl.DataFrame:
        """A ``dialogue_frame`` with the features that depend on the training logs (``command_overlap``, wording,
        slot gaps)."""
        return with_slot_evidence(with_wording(with_overlap(df, self.lexicon), self.wording, own=False), self.gaps)

    def predict(self, df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Labels and confidences for a prepared ``dialogue_frame``."""
        x = feature_matrix(df, self.feature_names)
        with threadpool_limits(self.config.threads, user_api="openmp"):
            proba = self.classifier.predict_proba(x)
        classes = self.classifier.classes_.astype(str)
        best = proba.argmax(axis=1)
        return classes[best], proba[np.arange(len(best)), best].astype(np.float32)

    def apply(self, logs: Logs, signals: pl.DataFrame | None = None) -> pl.DataFrame:
        """Per-turn ``pred_failure_point`` and ``confidence`` for every turn in the logs."""
        df = self.prepare(dialogue_frame(logs.turns(), _signals(logs, signals)))
        labels, conf = self.predict(df)
        return label_frame(df, labels, conf)

    def summary(self) -> dict[str, Any]:
        return {"weak_labels": self.n_train, "by_class": self.weak_label_counts}

    def save(self, root: Path) -> None:
        """``fpi/fpi.pkl`` (the classifier) and ``fpi/fpi.json`` in the set at ``root``."""
        directory = root / FPI_DIR
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MODEL_FILE).write_bytes(pickle.dumps(self.classifier))
        meta = {
            "feature_names": self.feature_names,
            "lexicon": self.lexicon,
            "wording": asdict(self.wording),
            "config": asdict(self.config),
            "n_train": self.n_train,
            "weak_label_counts": self.weak_label_counts,
            "slot_gaps": self.gaps.shares,
            "speaker_forms": self.gaps.speaker_forms,
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, root: Path) -> FpiModel:
        directory = root / FPI_DIR
        meta = json.loads((directory / META_FILE).read_text())
        classifier = pickle.loads((directory / MODEL_FILE).read_bytes())
        words = meta.get("wording", {})  # absent in models published before the wording evidence: features NaN
        return cls(
            classifier,
            meta["feature_names"],
            meta["lexicon"],
            WordingStats(
                words.get("success_forms", []),
                {k: (v[0], v[1]) for k, v in words.get("forms", {}).items()},
                {k: (v[0], v[1]) for k, v in words.get("speakers", {}).items()},
            ),
            FpiConfig(**meta["config"]),
            meta["n_train"],
            meta["weak_label_counts"],
            # absent in models published before the slot gaps: no gap evidence
            SlotGaps(meta.get("slot_gaps", {}), {k: (v[0], v[1]) for k, v in meta.get("speaker_forms", {}).items()}),
        )


def label_frame(df: pl.DataFrame, labels: np.ndarray, conf: np.ndarray) -> pl.DataFrame:
    return df.select("turn_id", "dialogue_id", "text", "result_status").with_columns(
        pred_failure_point=pl.Series(labels, dtype=pl.String), confidence=pl.Series(conf, dtype=pl.Float32)
    )


class FpiLearner:
    """Fits ``FpiModel`` on weak labels from logs (rule calls + rephrase diffs); never reads gold."""

    name: ClassVar[str] = "fpi"
    """The learner's name in ``LearnConfig.learners`` and in the learn report."""

    def __init__(self, config: FpiConfig | None = None):
        self.config = config or FpiConfig()

    def weak_labels(self, df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row indices, labels, augmented flags: confident rule calls, then diff-labelled rows with recovery hidden."""
        rule_labels, rule_conf = RuleFpi(self.config).predict(df)
        confident = rule_conf >= self.config.confident
        for stage in set(rule_labels[~confident]) - set(rule_labels[confident]):
            # a stage the rules never call confidently still needs examples: take its most confident calls
            mine = rule_labels == stage
            confident |= mine & (rule_conf >= rule_conf[mine].max())
        # a one-off failing wording next to a working command was misheard, whatever later stage gave up
        misheard = (
            df["one_off_near"].to_numpy()
            & df["defect_evidence"].to_numpy()
            & ~df["recovered"].to_numpy()
            & df["result_status"].is_in(("no_match", "no_entity")).to_numpy()
        )
        # a wording others fail with too, but not a habit of this person's, that almost matches a working command and
        # was not understood: the recogniser drops or swaps the same word for many people ("is the weather")
        misheard_often = (
            df.select(
                (pl.col("result_status") == "no_match")
                & ~pl.col("recovered")
                & ~pl.col("settled")
                & pl.col("speaker_form_fail").is_null()
                & (pl.col("nearest_command") >= MISHEARD_NEAR)
                & (pl.col("speaker_success") >= UNKNOWN_VOICE)
            )
            .to_series()
            .fill_null(False)
            .to_numpy()
        )
        misheard |= misheard_often
        rule_labels = np.where(misheard, "asr", rule_labels)
        # a voice that never issued a command that worked, answered anyway: speech not meant for the assistant
        unknown_voice = (df["speaker_success"].fill_null(1.0) < UNKNOWN_VOICE).to_numpy() & (
            df["result_status"] != "ignored"
        ).to_numpy()
        rule_labels = np.where(unknown_voice, "false_wake", rule_labels)
        # a household voice's out-of-domain request, declined, not followed up: impossible, not a false wake; unless
        # this person keeps saying it: a wording of theirs the NLU does not understand
        household = (rule_labels == "false_wake") & ~unknown_voice & df["speaker_success"].is_not_null().to_numpy()
        habitual = df["speaker_form_fail"].is_not_null().to_numpy()
        declined = household & ~habitual
        rule_labels = np.where(household & habitual, "nlu", rule_labels)
        # a right answer cut short: barge-in on a success, no objection, nothing said after it, no slot left open
        cut_short = (
            df.select(
                (pl.col("result_status") == "success")
                & pl.col("barge_in")
                & ~pl.col("negative")
                & pl.col("next_text").is_null()
                & (pl.col("slot_gap") < TASTE_GAP)
            )
            .to_series()
            .to_numpy()
        )
        # a household voice's request, not understood, alone in its dialogue, not cut short, in words this person
        # never used again and commands rarely use: a question the assistant cannot answer, declined (a command
        # wording the NLU misses recurs, and a misheard command keeps the command's words)
        one_off_question = (
            df.select(
                (pl.col("result_status") == "no_match")
                & (pl.col("n_turns") == 1)
                & ~pl.col("barge_in")
                & pl.col("speaker_form_fail").is_null()
                & ~pl.col("one_off_near")
                & (pl.col("command_overlap") < QUESTION_OVERLAP)
                & (pl.col("speaker_success") >= UNKNOWN_VOICE)
            )
            .to_series()
            .fill_null(False)
            .to_numpy()
        )
        # a failed turn whose rephrases end in a success nobody objected to, that leaves no taste open: recovered,
        # though a barge-in cut the answer short
        settled = (
            df.select(pl.col("settled") & ~pl.col("recovered") & (pl.col("slot_gap") < TASTE_GAP))
            .to_series()
            .to_numpy()
        )
        rule_labels = np.where(declined | cut_short | one_off_question | settled, "correct", rule_labels)
        # a carried-out request that leaves a taste open, whose wording failed for this person most other times:
        # it failed here too, though they let it go without a word
        silent = (
            df.select(
                (pl.col("result_status") == "success")
                & ~pl.col("defect_evidence")
                & (pl.col("slot_gap") >= TASTE_GAP)
                & (pl.col("speaker_form_fail") >= SILENT_FAIL)
            )
            .to_series()
            .fill_null(False)
            .to_numpy()
        )
        rule_labels = np.where(silent, "result", rule_labels)
        confident |= misheard | unknown_voice | household | cut_short | one_off_question | settled | silent
        keep = np.flatnonzero(confident)
        diff = diff_stage(df, self.config)
        aug = np.flatnonzero(diff != "")
        rows = np.concatenate([keep, aug])
        labels = np.concatenate([rule_labels[keep], diff[aug]])
        augmented = np.concatenate([np.zeros(len(keep), bool), np.ones(len(aug), bool)])
        return rows, labels, augmented

    def fit_frame(self, df: pl.DataFrame) -> FpiModel:
        lexicon = command_lexicon(df)
        wording = WordingStats.from_frame(df)
        gaps = SlotGaps.from_frame(df)
        df = with_slot_evidence(with_wording(with_overlap(df, lexicon), wording, own=True), gaps, own=True)
        if not self.config.speaker:  # no voice evidence: neither a feature nor the labelling functions that use it
            df = df.with_columns(speaker_success=pl.lit(None, pl.Float32))
        traces = [flatten_trace(t) for t in df["trace"].to_list()]
        names = list(base_features(df.head(0))) + [f"trace:{k}" for k in trace_names(traces)]
        rows, labels, augmented = self.weak_labels(df)
        x_all = feature_matrix(df, names)
        x = x_all[rows].copy()
        for feat in RECOVERY_FEATURES:
            x[augmented, names.index(feat)] = 0.0
        for prefix in ("next_status=",):
            for j, name in enumerate(names):
                if name.startswith(prefix):
                    x[augmented, j] = 0.0
        informative = np.isfinite(x).any(axis=0)
        names = [n for n, keep in zip(names, informative, strict=True) if keep]
        x = x[:, informative]
        counts = Counter(labels.tolist())
        # partial class balancing: rare stages count more, without flooding predictions with them
        weights = np.array([(len(labels) / counts[lab]) ** self.config.balance for lab in labels], dtype=np.float64)
        clf = HistGradientBoostingClassifier(
            max_iter=self.config.max_iter, learning_rate=self.config.learning_rate, random_state=self.config.seed
        )
        with threadpool_limits(self.config.threads, user_api="openmp"):
            clf.fit(x, labels, sample_weight=weights)
        return FpiModel(clf, names, lexicon, wording, self.config, len(labels), dict(counts), gaps)

    def fit(self, logs: Logs, signals: pl.DataFrame | None = None) -> FpiModel:
        return self.fit_frame(dialogue_frame(logs.turns(), _signals(logs, signals)))


def failure_summary(labelled: pl.DataFrame, *, top: int = 5) -> dict[str, dict[str, object]]:
    """Failure counts by stage and the most frequent failing utterance forms (normalised text) per stage."""
    out: dict[str, dict[str, object]] = {}
    for stage in FPI_CLASSES:
        rows = labelled.filter(pl.col("pred_failure_point") == stage)
        forms = rows.group_by("text").len().sort(["len", "text"], descending=[True, False]).head(top)
        out[stage] = {
            "count": rows.height,
            "share": rows.height / max(1, labelled.height),
            "top_forms": [{"text": t, "count": c} for t, c in forms.iter_rows()],
        }
    return out
