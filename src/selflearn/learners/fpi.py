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
import logging
import pickle
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from selflearn.learners.base import Artifact, Evidence, Logs
from selflearn.learners.labels.dialogue import FAILED_STATUSES, chain_end, dialogue_frame
from selflearn.learners.labels.trace import flatten_trace, trace_names
from selflearn.learners.labels.wording import WordingStats, with_wording
from selflearn.schema import FAILURE_POINTS, RESULT_STATUSES

logger = logging.getLogger(__name__)

FPI_CLASSES = FAILURE_POINTS
STATUSES = RESULT_STATUSES
NEAR_REPEAT = 0.8
UNKNOWN_VOICE = 0.1  # a speaker whose turns almost never work (a television) was not talking to the assistant
TASTE_GAP = 0.3  # share of an intent's failed turns whose rephrase spelled out a slot this turn leaves open
MISHEARD_NEAR = 0.85  # a failed wording this close to a working command, not a habit of the speaker's, was misheard
QUESTION_OVERLAP = 0.7  # a one-off request with fewer of its words in working commands is a question, not a command
MIN_REPHRASES = 5  # an intent's slot gaps are only evidence once this many of its failed turns were rephrased
SILENT_FAIL = 0.5  # a person's wording that failed at least this often elsewhere fails when nobody objects, too
FPI_DIR = Path("fpi")
MODEL_FILE = "fpi.pkl"
META_FILE = "fpi.json"


@dataclass(frozen=True)
class FpiConfig:
    confident: float = 0.75
    """Rule calls at least this confident become weak training labels."""
    asr_low: float = 0.6
    """ASR confidence below this points at ASR."""
    max_iter: int = 200
    """Boosting iterations of the classifier."""
    learning_rate: float = 0.1
    """Shrinkage of each boosting step."""
    balance: float = 0.5
    """Class weight = (n / n_class) ** balance: 0 = none, 1 = fully balanced."""
    threads: int = 1
    """OpenMP threads for boosting; more only helps on an idle machine (spin-waits under load)."""
    speaker: bool = True
    """Use the voice evidence (``speaker_success``); False: the ablation without a speaker id."""
    seed: int = 0
    """Seed of the classifier's randomness."""


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


class RuleFpi:
    """The transparent baseline: an ordered rule list, first match wins; each rule states its confidence.

    Needs ``command_overlap`` (``with_overlap``) for the false-wake rule: a one-turn dialogue nobody followed up,
    not understood, in words the assistant's successful commands rarely use, was most likely not meant for it; and
    ``slot_gap`` / ``recovered_same`` (``with_slot_evidence``) for the result rules: an entity-less "which team?"
    (``no_entity`` with nothing named, the intent has a gap slot) or an objected success that leaves open a slot
    people add when rephrasing the same intent was understood and resolved, but the assistant filled in what the
    person left to it wrongly.
    """

    def __init__(self, config: FpiConfig | None = None):
        self.config = config or FpiConfig()

    def rules(self) -> list[tuple[pl.Expr, str, float]]:
        status = pl.col("result_status")
        low_asr = pl.col("asr_confidence") < self.config.asr_low
        return [
            (status.is_in(("ignored", "unsupported", "feedback", "teach")) | pl.col("is_negation"), "correct", 0.9),
            (~pl.col("defect_evidence"), "correct", 0.85),
            (pl.col("recovered") & ~pl.col("recovered_same"), "correct", 0.8),
            ((status == "no_match") & (pl.col("n_turns") == 1) & (pl.col("command_overlap") < 0.5), "false_wake", 0.6),
            (low_asr, "asr", 0.8),
            ((status == "no_entity") & (pl.col("n_slots") == 0) & (pl.col("slot_gap") >= TASTE_GAP), "result", 0.8),
            (status == "no_entity", "er", 0.8),
            (status == "failed", "result", 0.85),
            (status == "no_match", "nlu", 0.7),
            ((status == "success") & (pl.col("slot_gap") >= TASTE_GAP), "result", 0.75),
            ((pl.col("next_sim") >= NEAR_REPEAT) & (pl.col("words_removed") > 0), "asr", 0.6),
            ((pl.col("next_intent") != pl.col("nlu_intent")).fill_null(False), "nlu", 0.6),
            (pl.col("diff_in_slots") > 0, "er", 0.6),
            (pl.lit(True), "er", 0.5),  # carried out, yet the user objected: most often the wrong device
        ]

    def predict(self, df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Labels and confidences for every row of a ``dialogue_frame`` with ``command_overlap``."""
        label: Any = None
        conf: Any = None
        for cond, name, confidence in reversed(self.rules()):
            cond = cond.fill_null(False)
            label = pl.lit(name) if label is None else pl.when(cond).then(pl.lit(name)).otherwise(label)
            conf = pl.lit(confidence) if conf is None else pl.when(cond).then(pl.lit(confidence)).otherwise(conf)
        out = df.select(label=label, conf=conf)
        return out["label"].to_numpy().astype(str), out["conf"].to_numpy().astype(np.float32)


def diff_stage(df: pl.DataFrame, config: FpiConfig) -> np.ndarray:
    """Stage read off the diff to the rephrase that recovered a failed turn ("" where there is none).

    Near-verbatim repeat with changed words, or a one-off wording next to a working command (``one_off_near``):
    the user said the same thing, so ASR misheard. Different intent in the successful rephrase: NLU. Same intent,
    same entities, and the rephrase spells out a slot the turn left to the assistant ("find me korean food"): the
    result (a taste filled wrongly). Same intent, no entity found, different entities, or the same action redone:
    ER (the wrong device). A failed execution: the result. A "recovery" by the identical request
    (``recovered_same``) is none, and has no diff to read.
    """
    idx = df["recovered_by"].to_numpy()
    defect = df["defect_evidence"].to_numpy() & (idx >= 0)
    if "recovered_same" in df.columns:
        defect &= ~df["recovered_same"].to_numpy()
    intents = df["nlu_intent"].fill_null("").to_numpy()
    entities = df["resolved_entities"].to_numpy()
    status = df["result_status"].to_numpy()
    asr = df["asr_confidence"].to_numpy()
    sim = df["next_sim"].fill_null(0.0).fill_nan(0.0).to_numpy()
    removed = df["words_removed"].to_numpy()
    slots = df["n_slots"].fill_null(0.0).to_numpy()
    misheard = df["one_off_near"].to_numpy() if "one_off_near" in df.columns else np.zeros(len(df), bool)
    out = np.full(len(df), "", dtype=object)
    for i in np.flatnonzero(defect):
        j = idx[i]
        if asr[i] < config.asr_low or (sim[i] >= NEAR_REPEAT and removed[i] > 0) or misheard[i]:
            out[i] = "asr"
        elif intents[i] != intents[j]:
            out[i] = "nlu"
        elif slots[j] > slots[i] and entities[i] == entities[j]:
            out[i] = "result"
        elif status[i] in ("no_entity", "success") or entities[i] != entities[j]:
            out[i] = "er"
        elif status[i] in FAILED_STATUSES:
            out[i] = "result"
    return out.astype(str)


def _matrix(df: pl.DataFrame, names: list[str]) -> np.ndarray:
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
        x = _matrix(df, self.feature_names)
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
        x_all = _matrix(df, names)
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
