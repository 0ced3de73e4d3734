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

import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import polars as pl

from selflearn.artifacts import ArtifactStore
from selflearn.controls import Controls, rule_id
from selflearn.errors import Conflict
from selflearn.home import Home
from selflearn.learners.base import Artifact, Evidence, Learner, Logs, TooLittle, save_set
from selflearn.learners.evidence import rule_evidence
from selflearn.learners.mining import MiningConfig, RewriteMiner, RewriteTables, chains, linked_requests
from selflearn.learners.signals import DefectSignals
from selflearn.learners.what_worked import RetrievalLearner
from selflearn.progress import track
from selflearn.runtime.form_index import OnlineConfig, save_indexes
from selflearn.runtime.patterns import delexicalise_frame, slot_names
from selflearn.runtime.ranker import Rule
from selflearn.runtime.retrieval import RetrievalConfig
from selflearn.runtime.runtime import Runtime
from selflearn.schema import Turn
from selflearn.text import normalize

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


@dataclass(frozen=True)
class ShadowReport:
    held_out_since: str
    """ISO timestamp: turns from here on were held out of mining and replayed."""
    turns: int
    """Held-out turns."""
    defects: int
    """Held-out turns the defect signals flag."""
    rewritten: int
    """Held-out turns the candidate (trained without that day) would treat differently than logged."""
    would_fix: float
    """Share of the held-out defects the candidate would fix."""
    would_break: float
    """Share of the held-out non-defects the candidate would break."""
    defect_rate_before: float
    """Held-out defect rate by the defect signals, as logged."""
    defect_rate_after: float
    """Held-out defect rate estimated with the candidate in force."""
    accepted: bool
    """The candidate does not raise the defect rate (within ``shadow_margin``): it may be published."""
    replayed: int = 0
    """Of them, turns replayed through the runtime (candidate's NLU text vs the logged one)."""
    log_only: int = 0
    """Held-out turns of homes without a configuration: log-only estimate (``log_only_estimate``)."""


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


SHADOW_COLUMNS = {
    "turn_id": pl.String(),
    "defect": pl.Boolean(),
    "replayed": pl.Boolean(),  # the candidate sends the NLU other text than logged: both replayed
    "log_only": pl.Boolean(),  # no home configuration for the turn: the log-only estimate stands in
    "logged_text": pl.String(),
    "candidate_text": pl.String(),
    "before_status": pl.String(),
    "before_intent": pl.String(),
    "before_slots": pl.String(),
    "after_status": pl.String(),
    "after_intent": pl.String(),
    "after_slots": pl.String(),
    "would_fix": pl.Float64(),
    "would_break": pl.Float64(),
    "log_only_fix": pl.Float64(),  # the log-only estimate of every turn (the suite's baseline)
    "log_only_break": pl.Float64(),
    "rule_id": pl.String(),  # the candidate's rule that rewrote a replayed turn (``controls.rule_id``)
}
REPLAYED_SOURCES = ("none", "global", "personal")  # feedback and taught rewrites do not come from the artifact set


def log_only_estimate(tables: RewriteTables, held_out: pl.DataFrame, homes: Sequence[Home] = ()) -> pl.DataFrame:
    """Per held-out turn (``turn_id``, ``log_fix``, ``log_break``), from logs alone: a turn a rule's source form
    matches counts as fixed with the rule's probability when the signals call it a defect, and as broken when it is
    clean and the rule's target intent differs from the logged one. Pattern rules are matched on the forms
    delexicalised with their homes' names."""
    g = tables.global_table.select(
        pl.col("source").alias("form"), g_target="target", g_p="probability", g_intent="target_intent"
    ).unique("form", keep="first", maintain_order=True)
    p = tables.personal_table.select(
        "user_id", pl.col("source").alias("form"), p_target="target", p_p="probability", p_intent="target_intent"
    ).unique(["user_id", "form"], keep="first", maintain_order=True)
    t = tables.pattern_table.select(
        pl.col("source").alias("pattern"), t_target="target", t_p="probability", t_intent="target_intent"
    ).unique("pattern", keep="first", maintain_order=True)
    frame = held_out.select("turn_id", "user_id", "home_id", "form", "defect", "nlu_intent")
    patterns = delexicalise_frame(held_out, homes)["form"] if homes else frame["form"]
    hit = (
        frame.with_columns(pattern=patterns)
        .join(g, on="form", how="left", maintain_order="left")
        .join(p, on=["user_id", "form"], how="left", maintain_order="left")
        .join(t, on="pattern", how="left", maintain_order="left")
        .with_columns(
            target=pl.coalesce("p_target", "g_target", "t_target"),
            prob=pl.coalesce("p_p", "g_p", "t_p"),
            target_intent=pl.coalesce("p_intent", "g_intent", "t_intent"),
        )
    )
    fires = pl.col("target").is_not_null()
    return hit.select(
        "turn_id",
        log_fix=pl.when(fires & pl.col("defect")).then(pl.col("prob")).otherwise(0.0),
        log_break=pl.when(fires & ~pl.col("defect") & pl.col("target_intent").ne_missing(pl.col("nlu_intent")))
        .then(1.0)
        .otherwise(0.0),
    )


def repair_outcomes(
    scored: pl.DataFrame,
    homes: Sequence[Home] = (),
    is_rephrase: pl.Series | None = None,
    config: MiningConfig | None = None,
) -> pl.DataFrame:
    """(``form``, ``intent``, ``slot_names``): what users reached when they repaired a failing form (a rephrase
    chain ending in a clean success, linked as mining links them: its intent and sorted slot names, values left out
    so a repair transfers across rooms and homes), for the lexical forms and, with ``homes``, their patterns. The
    shadow's evidence for what a failing form wants when nobody repaired it on the held-out day: a rule that
    rewrites it into some other request that happens to succeed ("coffee please" -> the weather, the living room
    lights -> the TV) is not a fix."""
    scored, links = linked_requests(scored, is_rephrase, config or MiningConfig())
    frames = [scored, delexicalise_frame(scored, homes)] if homes and scored.height else [scored]
    intent, slots = (pl.col("target").str.splitn("|", 2).struct.field(f) for f in ("field_0", "field_1"))
    names = slot_names(slots)
    outcomes = [
        chains(frame, links).select("form", intent=intent.replace("", None), slot_names=names if i == 0 else slots)
        for i, frame in enumerate(frames)
    ]
    return pl.concat(outcomes).drop_nulls().unique()


def shadow_turns(
    tables: RewriteTables,
    held_out: pl.DataFrame,
    homes: Sequence[Home] = (),
    online: OnlineConfig | None = None,
    repaired: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per held-out turn (``SHADOW_COLUMNS``): what the candidate tables would change, from logs and a replay.

    The candidate's ``OnlineRewriter`` (the runtime's code, loaded from the tables as saved) runs on each turn's
    heard text. Where it sends the NLU other text than the logs show went there, both texts are replayed through
    a private ``Runtime`` of the turn's home (dry run: its own copy of the device states, set to the logged
    snapshot). A turn the signals call a defect is *fixed* when the candidate's interpretation succeeds, differs
    from the logged one and from the replayed one, and is what was wanted: if the user rephrased it into a clean
    success next, what that repair got; otherwise an intent and slot names that users who repaired the rule's
    source form (or the heard form) reached, per ``repaired`` (``repair_outcomes`` of all logs; default: of
    ``held_out``). A clean turn
    is *broken* when its interpretation (status, intent, slots, resolved devices) changes. Turns of a home not in
    ``homes`` get the log-only estimate.
    """
    log_only = log_only_estimate(tables, held_out, homes)
    known = {h.id: h for h in homes}
    rows = held_out.select(
        "turn_id", "user_id", "home_id", "device_id", "ts", "asr_text", "rewritten_text", "rewrite_source",
        "nlu_intent", "nlu_slots", "resolved_entities", "result_status", "device_state_snapshot", "meta", "defect",
        "rephrased", "next_turn_id", "form",
    ).to_dicts()  # fmt: skip
    repairs = {  # clean successes: what a user who rephrased right before them wanted
        r["turn_id"]: interpretation(r["result_status"], r["nlu_intent"], r["nlu_slots"], r["resolved_entities"])
        for r in rows
        if r["result_status"] == "success" and not r["defect"]
    }
    for r in rows:
        r["repair"] = repairs.get(r["next_turn_id"]) if r["rephrased"] else None
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        replay = None
        if any(r["home_id"] in known for r in rows):
            evidence = repair_outcomes(held_out, homes) if repaired is None else repaired
            replay = _Replay(tables, Path(scratch), known, online, evidence)
        pairs = zip(rows, log_only.select("log_fix", "log_break").iter_rows(), strict=True)
        for row, (fix, brk) in track(pairs, "shadow check: replaying held-out turns", total=len(rows)):
            entry = {
                "turn_id": row["turn_id"], "defect": row["defect"], "replayed": False, "log_only": False,
                "log_only_fix": fix, "log_only_break": brk, "would_fix": 0.0, "would_break": 0.0,
            }  # fmt: skip
            if replay is None or not replay.knows(row):
                entry |= {"log_only": True, "would_fix": fix, "would_break": brk}
            elif not row["meta"] and row["rewrite_source"] in REPLAYED_SOURCES:
                entry |= replay.compare(row)
            out.append(entry)
    return pl.DataFrame(out, schema=SHADOW_COLUMNS)


def shadow_evaluate(
    tables: RewriteTables,
    held_out: pl.DataFrame,
    since: str,
    homes: Sequence[Home] = (),
    online: OnlineConfig | None = None,
    margin: int = 0,
) -> ShadowReport:
    """The held-out day's defect rate (by the signals) as logged and as estimated with ``tables`` in force."""
    return summarise_shadow(shadow_turns(tables, held_out, homes, online), since, margin)


def shadow_accepts(would_fix: float, would_break: float, margin: int) -> bool:
    """Accept unless the estimated breaks outnumber the fixes by more than ``margin`` turns: the candidate is mined
    without the held-out day, so a rule the set in service learned from that day shows up as a break or two that the
    published set (mined on every day) does not have."""
    return would_break - would_fix <= margin


def summarise_shadow(turns: pl.DataFrame, since: str, margin: int = 0) -> ShadowReport:
    """Accept iff the estimated defect rate does not rise by more than ``margin`` turns (``shadow_accepts``)."""
    n = max(turns.height, 1)
    defects = int(turns["defect"].sum())
    fix, brk = float(turns["would_fix"].sum()), float(turns["would_break"].sum())
    before, after = defects / n, (defects - fix + brk) / n
    changed = int(
        (turns["replayed"] | (turns["log_only"] & (turns["log_only_fix"] + turns["log_only_break"] > 0))).sum()
    )
    return ShadowReport(
        held_out_since=since,
        turns=turns.height,
        defects=defects,
        rewritten=changed,
        would_fix=fix,
        would_break=brk,
        defect_rate_before=before,
        defect_rate_after=after,
        accepted=shadow_accepts(fix, brk, margin),
        replayed=int(turns["replayed"].sum()),
        log_only=int(turns["log_only"].sum()),
    )


def interpretation(status: str | None, intent: str | None, slots: Any, entities: Any) -> tuple[Any, ...]:
    """What a turn did, for comparing a replay with the log: status, intent, slots, resolved devices. A device
    name or area counts by the devices it resolved to ("kitchen lite" and "kitchen light" are one lamp)."""
    slots = json.loads(slots) if isinstance(slots, str) else slots or {}
    entities = json.loads(entities) if isinstance(entities, str) else entities or {}
    devices = tuple(sorted(entities.get("devices") or ()))
    if devices:
        slots = {k: v for k, v in slots.items() if k not in ("name", "area")}
    return (status, intent, json.dumps(slots, sort_keys=True, default=str), devices)


class _Replay:
    """The candidate rewriter (loaded from ``tables`` saved under ``scratch``, personal tables on a user's first
    turn, as online), a dry-run runtime per home, built on its first replay, and the repaired forms' outcomes
    (``repair_outcomes``: form -> {(intent, slot names)}), for ``shadow_turns``."""

    def __init__(
        self,
        tables: RewriteTables,
        scratch: Path,
        homes: dict[str, Home],
        online: OnlineConfig | None,
        repaired: pl.DataFrame,
    ) -> None:
        from selflearn.runtime.rewriter import OnlineRewriter

        self.homes = homes
        wanted: dict[str, set[tuple[str, str]]] = {}
        for form, intent, names in repaired.select("form", "intent", "slot_names").iter_rows():
            wanted.setdefault(form, set()).add((intent, names))
        self.wanted = wanted
        self.lexical = {(normalize(s), normalize(t)) for s, t in tables.global_table.select("source", "target").rows()}
        self.runtimes: dict[str, Runtime] = {}
        tables.save(scratch)
        self.rewriter = OnlineRewriter.load(scratch, config=online)

    def knows(self, row: dict[str, Any]) -> bool:
        home = self.homes.get(row["home_id"])
        return home is not None and any(e.id == row["device_id"] for e in home.endpoints)

    def compare(self, row: dict[str, Any]) -> dict[str, Any]:
        home = self.homes[row["home_id"]]
        heard = row["asr_text"] or ""
        logged = row["rewritten_text"] if row["rewrite_source"] != "none" and row["rewritten_text"] else heard
        best = self.rewriter.best(heard, user_id=row["user_id"], home=home)  # what ``rewrite`` would send
        candidate = best.text if best is not None and normalize(best.text) != normalize(heard) else heard
        if normalize(candidate) == normalize(logged):
            return {}
        before, after = self._interpret(logged, row), self._interpret(candidate, row)
        was = interpretation(row["result_status"], row["nlu_intent"], row["nlu_slots"], row["resolved_entities"])
        b = interpretation(before.result_status, before.nlu_intent, before.nlu_slots, before.resolved_entities)
        a = interpretation(after.result_status, after.nlu_intent, after.nlu_slots, after.resolved_entities)
        fixed = row["defect"] and after.result_status == "success" and a != b and a != was
        if fixed and row["repair"] is not None:  # the user's own repair says what was wanted
            fixed = row["repair"] == a
        elif fixed and best is not None:  # else what others who repaired the rule's source (or this form) reached
            wanted = self.wanted.get(best.rule.source, set()) | self.wanted.get(row["form"], set())
            fixed = (after.nlu_intent, ",".join(sorted(after.nlu_slots))) in wanted
        broken = not row["defect"] and a != b
        rule = None if candidate == heard or best is None else self.rule_id(best.rule, row["user_id"])
        return {
            "rule_id": rule,
            "replayed": True, "logged_text": logged, "candidate_text": candidate,
            "before_status": before.result_status, "before_intent": before.nlu_intent,
            "before_slots": json.dumps(before.nlu_slots, sort_keys=True, default=str),
            "after_status": after.result_status, "after_intent": after.nlu_intent,
            "after_slots": json.dumps(after.nlu_slots, sort_keys=True, default=str),
            "would_fix": float(fixed), "would_break": float(broken),
        }  # fmt: skip

    def rule_id(self, rule: Rule, user_id: str) -> str:
        """The fired rule's ``controls.rule_id`` (a global-layer rule not in the global table is a pattern rule)."""
        lexical = "global" if (rule.source, rule.target) in self.lexical else "pattern"
        kind = "personal" if rule.layer == "personal" else lexical
        return rule_id(kind, user_id if kind == "personal" else None, rule.source, rule.target)

    def _interpret(self, text: str, row: dict[str, Any]) -> Turn:
        home = self.homes[row["home_id"]]
        runtime = self.runtimes.get(home.id)
        if runtime is None:
            runtime = self.runtimes[home.id] = Runtime(home)
        runtime.state.clear()
        runtime.state.update({d.id: dict(d.state) for d in home.devices})
        snapshot = json.loads(row["device_state_snapshot"] or "{}")
        runtime.state.update({d: dict(s) for d, s in snapshot.items() if d in runtime.state})
        runtime.forget(row["user_id"])
        return runtime.interpret(text, user_id=row["user_id"], endpoint_id=row["device_id"], now=row["ts"]).turn


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
