"""The nightly learning run: logs -> signals -> rewrite mining -> shadow check -> one atomically published artifact set.

``learn`` is the one entry point (CLI ``selflearn learn``, the daily loop, the service). A batch is published only
if a shadow evaluation on the most recent day, held out from mining, estimates that it would not raise the defect
rate; otherwise the artifact set in service stays. The estimate uses logs only: for each held-out turn a rewrite
would fire on, a turn the signals call defective counts as fixed with the rewrite's probability, a clean turn counts
as broken when the rewrite would change its intent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from selflearn.artifacts import ArtifactStore
from selflearn.home import Home
from selflearn.rewrite.mining import MiningConfig, RewriteMiner, RewriteTables
from selflearn.rewrite.patterns import delexicalise_frame
from selflearn.signals import DefectSignals, LogSource

Progress = Callable[[str], None]


@dataclass(frozen=True)
class LearnConfig:
    mining: MiningConfig = field(default_factory=MiningConfig)
    shadow: bool = True  # hold out the most recent day and reject a batch that would raise the defect rate
    held_out_hours: float = 24.0  # "the most recent day": the last 24 h of logs (robust to late-night spill)
    rephrase_model: bool = False  # detect rephrases with the span model (rewrite/span.py) instead of the rule
    labels: bool = False  # also train the label model and the FPI model (labels/, fpi/ in the artifact set)


@dataclass(frozen=True)
class ShadowReport:
    held_out_since: str  # ISO timestamp: turns from here on were held out of mining and replayed
    turns: int
    defects: int
    rewritten: int  # held-out turns a rewrite (trained without that day) would fire on
    would_fix: float
    would_break: float
    defect_rate_before: float
    defect_rate_after: float
    accepted: bool


@dataclass
class LearnReport:
    turns: int
    defects: int
    defect_rate: float
    global_rewrites: int
    personal_rewrites: int
    personal_users: int
    published: bool
    version: str | None  # the artifact version in service after this run
    previous: str | None
    shadow: ShadowReport | None
    seconds: float
    rephrase_detector: str
    parts: dict[str, Any] = field(default_factory=dict)  # other learners' summaries (fpi, labels, teach, ...)
    global_patterns: int = 0  # global rules over delexicalised forms (needs the homes' configurations)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def shadow_evaluate(
    tables: RewriteTables, held_out: pl.DataFrame, since: str, homes: Sequence[Home] = ()
) -> ShadowReport:
    """Log-only estimate of the held-out day's defect rate with ``tables`` in force (``held_out`` is scored);
    pattern rules are matched on the held-out forms delexicalised with their homes' names."""
    g = tables.global_table.select(
        pl.col("source").alias("form"), g_target="target", g_p="probability", g_intent="target_intent"
    )
    p = tables.personal_table.select(
        "user_id", pl.col("source").alias("form"), p_target="target", p_p="probability", p_intent="target_intent"
    )
    t = tables.pattern_table.select(
        pl.col("source").alias("pattern"), t_target="target", t_p="probability", t_intent="target_intent"
    )
    frame = held_out.select("user_id", "home_id", "form", "defect", "nlu_intent")
    patterns = delexicalise_frame(held_out, homes)["form"] if homes else frame["form"]
    hit = (
        frame.with_columns(pattern=patterns)
        .join(g, on="form", how="left")
        .join(p, on=["user_id", "form"], how="left")
        .join(t, on="pattern", how="left")
        .with_columns(
            target=pl.coalesce("p_target", "g_target", "t_target"),
            prob=pl.coalesce("p_p", "g_p", "t_p"),
            target_intent=pl.coalesce("p_intent", "g_intent", "t_intent"),
        )
        .filter(pl.col("target").is_not_null())
    )
    fix = float(hit.filter(pl.col("defect"))["prob"].sum())
    changes_intent = pl.col("target_intent").ne_missing(pl.col("nlu_intent"))
    brk = float(hit.filter(~pl.col("defect") & changes_intent).height)
    n = max(held_out.height, 1)
    defects = int(held_out["defect"].sum())
    before = defects / n
    after = (defects - fix + brk) / n
    return ShadowReport(since, held_out.height, defects, hit.height, fix, brk, before, after, after <= before)


def learn(
    logs: LogSource,
    artifacts: ArtifactStore,
    *,
    config: LearnConfig | None = None,
    progress: Progress | None = None,
    homes: Sequence[Home] = (),
) -> LearnReport:
    """Learn from every log in ``logs`` and publish one artifact set (unless the shadow check rejects it).

    ``homes`` (the assistant's home configurations, not labels) name the entities that pattern rules abstract
    over; without them only lexical rules are mined."""
    cfg = config or LearnConfig()
    say = progress or (lambda _msg: None)
    start = time.perf_counter()
    say("scoring defect signals")
    turns, feedback = logs.turns(), logs.feedback()
    signals = DefectSignals(cfg.mining.signals)
    scored = signals.score_frame(turns, feedback)
    miner = RewriteMiner(cfg.mining)
    shadow = None
    train: pl.DataFrame | None = None
    last = scored["ts"].max()
    cutoff = last - timedelta(hours=cfg.held_out_hours) if isinstance(last, datetime) else None
    if cfg.shadow and cutoff is not None and scored["ts"].min() < cutoff:  # type: ignore[operator]
        say(f"shadow check: mining without the turns since {cutoff.isoformat()}, replaying them")
        train = signals.score_frame(turns.filter(pl.col("ts") < cutoff), feedback)
    detect = _rephrase_detector(train if train is not None else scored, scored, cfg, say)
    if train is not None and cutoff is not None:
        held = scored.filter(pl.col("ts") >= cutoff)
        shadow = shadow_evaluate(
            miner.fit_frame(train, detect(train), homes=homes), held, cutoff.isoformat(), homes
        )
    say("mining rewrites")
    tables = miner.fit_frame(scored, detect(scored), homes=homes)
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
        rephrase_detector="span_model" if cfg.rephrase_model else "rule",
        global_patterns=tables.pattern_table.height,
    )
    save_labels = None
    if cfg.labels:
        from selflearn.labels.artifact import fit_label_artifacts

        save_labels, label_parts = fit_label_artifacts(logs, scored, say)
        report.parts.update(label_parts)
    if shadow is None or shadow.accepted:
        say("publishing artifacts")

        def build(root: Path) -> None:
            tables.save(root)
            if save_labels is not None:
                save_labels(root)

        meta = {k: v for k, v in report.to_dict().items() if k not in ("shadow", "parts", "version", "published")}
        report.version = artifacts.publish(build, meta=meta | {"shadow": None if shadow is None else asdict(shadow)})
        report.published = True
    report.seconds = time.perf_counter() - start
    return report


def _rephrase_detector(
    fit_on: pl.DataFrame, scored: pl.DataFrame, cfg: LearnConfig, say: Progress
) -> Callable[[pl.DataFrame], pl.Series | None]:
    """Per turn: is the user's next turn a rephrase of it (None means the miner's rule baseline).

    The span model is trained once on weak labels from ``fit_on`` (the shadow day stays held out) and run once over
    ``scored``, only on turns with some defect evidence (the miner links nothing else); the shadow's training frame
    looks its calls up by (turn, next turn).
    """
    if not cfg.rephrase_model:
        return lambda _frame: None
    from selflearn.rewrite.span import SpanConfig, SpanModel

    say("training the span rephrase model")
    model = SpanModel(SpanConfig(pair_window_s=cfg.mining.pair_window_s)).fit(fit_on)
    say("detecting rephrases with the span model")
    evidence = pl.col("defect") | (pl.col("turn_score") > 0)
    calls = scored.select("turn_id", "next_turn_id").with_columns(is_rephrase=model.predict_next(scored, evidence))

    def detect(frame: pl.DataFrame) -> pl.Series:
        looked_up = frame.select("turn_id", "next_turn_id").join(
            calls, on=["turn_id", "next_turn_id"], how="left", nulls_equal=True, maintain_order="left"
        )
        return looked_up["is_rephrase"].fill_null(False)

    return detect
