"""The nightly learning run: logs -> signals -> rewrite mining -> shadow check -> one atomically published artifact set.

``learn`` is the one entry point (CLI ``selflearn learn``, the daily loop, the service). A batch is published only
if a shadow evaluation on the most recent day, held out from mining, estimates that it would not raise the defect
rate; otherwise the artifact set in service stays. The estimate replays the held-out day: the candidate's online
rewriter runs on every heard text, and where it would send the NLU other text than the logs show, the shared
runtime interprets both (dry run). A turn the signals call defective counts as fixed when the new interpretation
succeeds, differs, and is what users who repaired that form reached (intent and slot names, ``repair_outcomes``); a
clean turn counts as broken when its interpretation changes (``shadow_turns``). Rules people disabled everywhere
are left out and pinned ones kept (``rewrite/controls.py``), in the candidate and in the published set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import polars as pl

from selflearn.artifacts import ArtifactStore
from selflearn.controls import Controls
from selflearn.errors import Conflict
from selflearn.home import Home
from selflearn.learners.base import Artifact, Evidence, Learner, Logs, TooLittle, save_set
from selflearn.learners.evidence import rule_evidence
from selflearn.learners.mining import MiningConfig, RewriteMiner, RewriteTables
from selflearn.learners.shadow import ShadowReport, repair_outcomes, shadow_turns, summarise_shadow
from selflearn.learners.signals import DefectSignals
from selflearn.learners.what_worked import RetrievalLearner
from selflearn.runtime.form_index import OnlineConfig, save_indexes
from selflearn.runtime.retrieval import RetrievalConfig

if TYPE_CHECKING:
    from selflearn.learners.span import SpanModel

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
LearnerName = Literal["signals", "span", "mining", "retrieval", "labels", "fpi", "encoder"]
LEARNERS: tuple[LearnerName, ...] = get_args(LearnerName)  # in the order a run fits them
DEFAULT_LEARNERS: tuple[LearnerName, ...] = ("signals", "mining", "retrieval")


@dataclass(frozen=True)
class LearnConfig:
    mining: MiningConfig = field(default_factory=MiningConfig)
    """Settings of the rewrite miner."""
    shadow: bool = True
    """Hold out the most recent day and reject a batch that would raise the defect rate."""
    held_out_hours: float = 24.0
    """Hours held out as "the most recent day": the last 24 h of logs (robust to late-night spill)."""
    learners: tuple[LearnerName, ...] = DEFAULT_LEARNERS
    """The learners whose artifacts make up the published set; signals and mining always run (the shadow check and
    the rules need them). "span": detect rephrases with the span model instead of the rule (``--rephrase-model``);
    "labels", "fpi": the label and failure-point models (``--labels``); "encoder": fine-tune the retrieval encoder
    on the mined pairs (``--encoder``)."""
    online: OnlineConfig = field(default_factory=OnlineConfig)
    """The runtime's rewriter settings, for the shadow."""
    shadow_margin: int = 2
    """Net held-out turns a batch may cost (one day's estimate is noisy by a turn or two)."""
    allow_shrink: bool = False
    """Publish even a set with fewer than ``shrink_floor`` x the rules in service."""
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    """Retrieval settings: what works + the fitted ranker."""
    shrink_floor: float = 0.5
    """Below this share of the rules in service a set is held back (a lost store, a typo)."""


class LearnError(Conflict):
    """Nothing to learn from (no turns): publishing would replace what was learned with an empty set (exit 1, 409)."""


@dataclass
class LearnReport:
    turns: int
    """Turns learned from."""
    defects: int
    """Turns the defect signals flag."""
    defect_rate: float
    """Share of turns flagged as defects."""
    global_rewrites: int
    """Rules in the global table."""
    personal_rewrites: int
    """Rules in the personal tables."""
    personal_users: int
    """Users with at least one personal rule."""
    published: bool
    """A new artifact version went into service."""
    version: str | None
    """The artifact version in service after this run."""
    previous: str | None
    """The version in service before this run, if any."""
    shadow: ShadowReport | None
    """The shadow check's report; None when it was off or nothing was held out."""
    seconds: float
    """Wall-clock time of the run, in seconds."""
    rephrase_detector: str
    """Which rephrase detector mining used ("rule" or "span model")."""
    parts: dict[str, Any] = field(default_factory=dict)
    """Other learners' summaries (fpi, labels, teach, ...)."""
    global_patterns: int = 0
    """Global rules over delexicalised forms (needs the homes' configurations)."""
    refused: str | None = None
    """Why a set the shadow check accepted was still not published (``allow_shrink``)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def learn(
    logs: Logs,
    artifacts: ArtifactStore,
    *,
    config: LearnConfig | None = None,
    progress: Progress | None = None,
    homes: Sequence[Home] = (),
    on_shadow: Callable[[RewriteTables, pl.DataFrame], None] | None = None,
    mine: Callable[[datetime | None], RewriteTables] | None = None,
) -> LearnReport:
    """Learn from every log in ``logs`` and publish one artifact set (unless the shadow check rejects it).

    ``homes`` (the assistant's home configurations, not labels) name the entities that pattern rules abstract
    over and let the shadow check replay the held-out day; without them only lexical rules are mined and the shadow
    falls back to the log-only estimate. ``on_shadow`` receives the candidate tables and ``shadow_turns`` (the
    ``loop`` suite scores them against gold). ``mine(before)`` replaces the embedded miner (the Spark engine: the
    same tables from the logs before ``before``, or all of them for None); it takes the rule rephrase baseline."""
    cfg = config or LearnConfig()
    if mine is not None and "span" in cfg.learners:
        raise LearnError("the span rephrase model runs with the embedded engine only: drop --rephrase-model")
    say = progress or logger.debug
    start = time.perf_counter()
    say("scoring defect signals")
    turns, feedback = logs.turns(), logs.feedback()
    if turns.height == 0:
        raise LearnError("no turns to learn from: the logs are empty, nothing was published")
    signals = DefectSignals(cfg.mining.signals)
    scored = signals.score_frame(turns, feedback)
    miner = RewriteMiner(cfg.mining)
    controls = Controls(artifacts.root)
    shadow = None
    shadowed: tuple[RewriteTables, pl.DataFrame] | None = None  # the candidate and its replay: per-rule evidence
    train: pl.DataFrame | None = None
    last = scored["ts"].max()
    cutoff = last - timedelta(hours=cfg.held_out_hours) if isinstance(last, datetime) else None
    if cfg.shadow and cutoff is not None and scored["ts"].min() < cutoff:  # type: ignore[operator]
        say(f"shadow check: mining without the turns since {cutoff.isoformat()}, replaying them")
        train = signals.score_frame(turns.filter(pl.col("ts") < cutoff), feedback)
    detect, span = _rephrase_detector(train if train is not None else scored, scored, cfg, say)
    links = detect(scored)
    if train is not None and cutoff is not None:
        held = scored.filter(pl.col("ts") >= cutoff)
        mined = mine(cutoff) if mine is not None else miner.fit_frame(train, detect(train), homes=homes)
        candidate = controls.apply(mined)
        say(f"shadow check: replaying {held.height:,} held-out turns")
        repaired = repair_outcomes(scored, homes, links, cfg.mining)
        replayed = shadow_turns(candidate, held, homes, cfg.online, repaired)
        shadow = summarise_shadow(replayed, cutoff.isoformat(), cfg.shadow_margin)
        shadowed = (candidate, replayed)
        if on_shadow is not None:
            on_shadow(candidate, replayed)
    evidence = Evidence(logs, scored, links, tuple(homes))
    say("mining rewrites")
    mined = mine(None) if mine is not None else miner.fit(evidence)
    tables = controls.apply(mined)  # people's disables and pins
    previous = artifacts.current()
    defects = int(scored["defect"].sum()) if scored.height else 0
    report = LearnReport(
        turns=scored.height,
        defects=defects,
        defect_rate=defects / max(scored.height, 1),
        global_rewrites=tables.global_table.height,
        personal_rewrites=tables.personal_table.height,
        personal_users=tables.personal_table["user_id"].n_unique(),
        published=False,
        version=previous,
        previous=previous,
        shadow=shadow,
        seconds=0.0,
        rephrase_detector="span_model" if span is not None else "rule",
        global_patterns=tables.pattern_table.height,
    )
    fitted: dict[str, Artifact] = {"mining": rule_evidence(tables, scored, links, homes, cfg.mining, shadowed)}
    if "signals" in cfg.learners:
        fitted["signals"] = signals.fit(evidence)
    if span is not None:
        fitted["span"] = span
    for learner in _learners(cfg):
        say(f"fitting {learner.name}")
        try:
            fitted[learner.name] = learner.fit(evidence)
        except TooLittle as e:
            report.parts[learner.name] = {"skipped": str(e)}
    report.parts |= {name: a.summary() for name, a in fitted.items() if name != "mining"}
    report.refused = _shrinks(tables, artifacts, cfg) if shadow is None or shadow.accepted else None
    if (shadow is None or shadow.accepted) and report.refused is None:
        say("publishing artifacts")

        def build(root: Path) -> None:
            save_set(root, list(fitted.values()))
            save_indexes(root, config=cfg.online)  # the rewrite tables' faiss indexes, derived from them

        meta = {k: v for k, v in report.to_dict().items() if k not in ("shadow", "parts", "version", "published")}
        meta |= {"shadow": None if shadow is None else asdict(shadow), "logs_until": str(last) if last else None}
        report.version = artifacts.publish(build, meta=meta)  # logs_until: when it goes live on the logs' clock
        report.published = True
    report.seconds = time.perf_counter() - start
    return report


def _learners(cfg: LearnConfig) -> list[Learner[Artifact]]:
    """The configured learners fitted after mining, in ``LEARNERS`` order (imported only when configured)."""
    out: list[Learner[Artifact]] = []
    if "labels" in cfg.learners:
        from selflearn.learners.labels.learner import LabelLearner

        out.append(LabelLearner())
    if "fpi" in cfg.learners:
        from selflearn.learners.fpi import FpiLearner

        out.append(FpiLearner())
    out.append(RetrievalLearner(cfg.retrieval, cfg.mining))
    if "encoder" in cfg.learners:
        from selflearn.learners.finetune import EncoderTuner

        out.append(EncoderTuner(mining=cfg.mining))
    return out


def _shrinks(tables: RewriteTables, artifacts: ArtifactStore, cfg: LearnConfig) -> str | None:
    """Why ``tables`` must not replace the set in service: it keeps fewer than ``shrink_floor`` of its rules (logs
    lost or a wrong store, not a night's learning), unless ``allow_shrink``. None: fine to publish."""
    root = artifacts.current_dir()
    if cfg.allow_shrink or root is None:
        return None
    in_service = RewriteTables.load(root)
    before = sum(t.height for t in (in_service.global_table, in_service.pattern_table, in_service.personal_table))
    after = sum(t.height for t in (tables.global_table, tables.pattern_table, tables.personal_table))
    if after >= cfg.shrink_floor * before:
        return None
    return (
        f"the new set has {after} rules, the one in service ({artifacts.current()}) {before}: "
        "not published (--allow-shrink to publish it anyway)"
    )


def _rephrase_detector(
    fit_on: pl.DataFrame, scored: pl.DataFrame, cfg: LearnConfig, say: Progress
) -> tuple[Callable[[pl.DataFrame], pl.Series | None], SpanModel | None]:
    """Per turn: is the user's next turn a rephrase of it (None means the miner's rule baseline).

    The span model is trained once on weak labels from ``fit_on`` (the shadow day stays held out) and run once over
    ``scored``, only on turns with some defect evidence (the miner links nothing else); the shadow's training frame
    looks its calls up by (turn, next turn).
    """
    if "span" not in cfg.learners:
        return (lambda _frame: None), None
    from selflearn.learners.span import SpanConfig, SpanLearner

    say("training the span rephrase model")
    model = SpanLearner(SpanConfig(pair_window_s=cfg.mining.pair_window_s)).fit_frame(fit_on)
    say("detecting rephrases with the span model")
    evidence = pl.col("defect") | (pl.col("turn_score") > 0)
    calls = scored.select("turn_id", "next_turn_id").with_columns(is_rephrase=model.predict_next(scored, evidence))

    def detect(frame: pl.DataFrame) -> pl.Series:
        looked_up = frame.select("turn_id", "next_turn_id").join(
            calls, on=["turn_id", "next_turn_id"], how="left", nulls_equal=True, maintain_order="left"
        )
        return looked_up["is_rephrase"].fill_null(False)

    return detect, model
