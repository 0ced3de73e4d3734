"""Eval suite ``loop``: the daily cycle (simulate a day, learn overnight, swap artifacts) and its defect curve.

Metrics: ``defect_rate_day<N>`` for every day, ``defect_rate_day1``, ``defect_rate_last`` and ``relative_drop``
(day 1 to the last day, relative). Days differ in what people ask, so the same seeded days are also replayed with
nothing learned (the control): ``reduction_vs_control_last`` and ``reduction_vs_control_mean`` (days 2..N) are the
learning effect with the world's day-to-day variation taken out. ``teaching_*``: the same, with people also
teaching and answering feedback questions (the demo's setting).

``shadow_*``: how right the nightly shadow check is (``learn.shadow_turns``: the candidate tables replayed on the
held-out day, judged by the defect signals) against gold: the same replays (logged NLU text vs the candidate's)
judged by the simulator's truth (``suites.rewrite.understood``: success, true intent, true slots). A gold *fix* is a
turn the candidate's text gets right and the logged one did not, a gold *break* the reverse.
``shadow_decision_accuracy``: nights where accept/reject agrees with "the gold defect rate did not rise";
``shadow_fix_precision``: estimated fixes gold confirms; ``shadow_break_recall``: gold breaks the shadow caught;
``shadow_delta_mae``: mean absolute error of the estimated vs gold defect-rate change. ``shadow_shuffled_*``: the
same for a deliberately harmful twin of each night's batch (targets moved to the next rule, ``shuffled``), which the
shadow should reject. In the loop the candidate
(mined without the last day) is nearly the set that ran that day, so little changes (``shadow_inloop_*``); the
headline ``shadow_*`` numbers therefore replay each night's candidate on the control arm's same day (logged with
nothing learned, scored by the signals on the control logs so far). ``baseline`` holds the same numbers for the
log-only estimate (``learn.log_only_estimate``).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import polars as pl
from rich.progress import Progress, TaskID

from selflearn import progress
from selflearn.artifacts import ArtifactStore
from selflearn.eval import harness as evaluate
from selflearn.home import Home
from selflearn.learners.mining import RewriteTables
from selflearn.schema import Gold
from selflearn.sim import SimConfig
from selflearn.sim.loop import DayStats, LoopResult, eval_world, run_loop

logger = logging.getLogger(__name__)

QUICK = (12, 6)  # homes, days
FULL = (32, 14)


@evaluate.suite("loop")
def run(config: evaluate.EvalConfig) -> evaluate.EvalResult:
    n_homes, days = QUICK if config.quick else FULL
    homes, focus = eval_world(n_homes, config.seed, config.home)
    arms = {  # name: (progress label, learning, teaching)
        "control": ("control (nothing learned): ", False, False),
        "learned": ("", True, False),
        "taught": ("with teaching: ", True, True),
    }
    runs = {}
    nights: list[tuple[int, RewriteTables, pl.DataFrame]] = []
    with tempfile.TemporaryDirectory(dir=config.work_dir) as tmp, progress.bar() as bar:
        for name, (label, learning, teaching) in arms.items():
            task = bar.add_task(f"loop: {name}", total=days)
            runs[name] = run_loop(
                homes,
                days=days,
                seed=config.seed,
                artifacts=ArtifactStore(Path(tmp) / name),
                on_stage=_prefixed(label),
                on_day=partial(_advance, bar, task),
                on_shadow=(lambda night, tables, turns: nights.append((night, tables, turns)))
                if name == "learned"
                else None,
                focus=focus,
                learning=learning,
                teaching=teaching,
                retrieval=config.retrieval,
                sim_config=SimConfig(phrasing=config.phrasing),
            )
    control, result, taught = runs["control"], runs["learned"], runs["taught"]
    metrics = result.metrics(control.days)
    with_teaching = taught.metrics(control.days)
    for key in ("defect_rate_last", "reduction_vs_control_last", "reduction_vs_control_mean"):
        metrics[f"teaching_{key}"] = with_teaching[key]
    metrics |= {f"rewrite_rate_day{d.day}": d.rewrite_rate for d in result.days}
    metrics |= {f"retrieval_rate_day{d.day}": d.retrieval_rate for d in result.days}
    metrics |= {"retrieval": float(config.retrieval), "realistic_phrasing": float(config.phrasing == "realistic")}
    baseline = {k: v for k, v in metrics.items() if k.startswith("control_")}
    logger.info("shadow check vs gold: each night's candidate on the control arm's same day")
    fresh, harmful = [], []
    for night, tables, _ in nights:
        real, twin = shadow_on(control, night, [tables, shuffled(tables)], homes)
        fresh.append((night, real))
        harmful.append((night, twin))
    for prefix, frames, gold in (
        ("shadow_", fresh, control.gold),
        ("shadow_shuffled_", harmful, control.gold),
        ("shadow_inloop_", [(n, f) for n, _, f in nights], result.gold),
    ):
        scores = shadow_scores(frames, {g.turn_id: g for g in gold})
        metrics |= {prefix + k: v for k, v in scores["shadow"].items()}
        baseline |= {prefix + k: v for k, v in scores["log_only"].items()}
    return evaluate.EvalResult(n=sum(d.turns for d in result.days), metrics=metrics, baseline=baseline)


def _advance(bar: Progress, task: TaskID, _stats: DayStats) -> None:
    bar.advance(task)


def _prefixed(label: str) -> Callable[[str], None]:
    return lambda msg: logger.info(f"{label}{msg}")


def shadow_on(
    control: LoopResult, night: int, batches: Sequence[RewriteTables], homes: Sequence[Home]
) -> list[pl.DataFrame]:
    """``shadow_turns`` of each of a night's batches on the control arm's logs up to that day (held out: its last
    24 h, as ``learn`` holds out; the repairs' evidence from all of those logs, as ``learn`` passes all of its
    logs)."""
    from datetime import timedelta

    from selflearn.learners.learn import LearnConfig
    from selflearn.learners.shadow import repair_outcomes, shadow_turns
    from selflearn.learners.signals import DefectSignals
    from selflearn.store.logview import LogView

    cfg = LearnConfig()
    turns = control.turns[: control.day_ends[night - 1]]
    ids = {t.turn_id for t in turns}
    view = LogView.from_records(turns, [f for f in control.feedback if f.turn_id in ids])
    scored = DefectSignals(cfg.mining.signals).score_frame(view.turns(), view.feedback())
    cutoff = scored["ts"].max() - timedelta(hours=cfg.held_out_hours)  # type: ignore[operator]
    held = scored.filter(pl.col("ts") >= cutoff)
    repaired = repair_outcomes(scored, homes, config=cfg.mining)
    return [shadow_turns(tables, held, homes, cfg.online, repaired) for tables in batches]


def shuffled(tables: RewriteTables) -> RewriteTables:
    """A deliberately harmful twin of a batch: each rule's target (and target intent) moved to the next rule of its
    table, so the forms the rules fire on are rewritten into someone else's request."""

    def rotate(table: pl.DataFrame) -> pl.DataFrame:
        return table.with_columns(
            pl.Series(c, table[c].to_list()[-1:] + table[c].to_list()[:-1], dtype=pl.String())
            for c in ("target", "target_intent")
        )

    return RewriteTables(rotate(tables.global_table), rotate(tables.personal_table), rotate(tables.pattern_table))


def understood(status: str | None, intent: str | None, slots: str | None, gold: Gold) -> bool:
    """``suites.rewrite.understood`` on a replayed interpretation; a request without a true intent is right only
    when it is impossible and declined (chatter is a false wake whatever the rewrite does)."""
    from selflearn.sim.judge import slot_matches

    if gold.true_intent is None:
        return gold.is_impossible and status in ("no_match", "unsupported", "ignored")
    values = json.loads(slots or "{}")
    return (
        status == "success"
        and intent == gold.true_intent
        and all(slot_matches(values.get(k), str(v)) for k, v in gold.true_slots.items())
    )


@dataclass
class _Tally:
    nights: int = 0
    decisions_right: int = 0
    accepted: int = 0
    est_fixes: int = 0
    est_fixes_confirmed: int = 0
    est_breaks: int = 0
    est_breaks_confirmed: int = 0
    gold_fixes: int = 0
    gold_breaks: int = 0
    gold_breaks_caught: int = 0
    errors: list[float] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        return {
            "decision_accuracy": self.decisions_right / max(self.nights, 1),
            "accepted_nights": self.accepted,
            "nights": self.nights,
            "fix_precision": self.est_fixes_confirmed / max(self.est_fixes, 1),
            "fix_recall": self.est_fixes_confirmed / max(self.gold_fixes, 1),
            "break_precision": self.est_breaks_confirmed / max(self.est_breaks, 1),
            "break_recall": self.gold_breaks_caught / max(self.gold_breaks, 1),
            "delta_mae": sum(self.errors) / max(len(self.errors), 1),
            "est_fixes": self.est_fixes,
            "est_breaks": self.est_breaks,
            "gold_fixes": self.gold_fixes,
            "gold_breaks": self.gold_breaks,
        }


def shadow_scores(
    nights: Sequence[tuple[int, pl.DataFrame]], gold: dict[str, Gold], margin: int | None = None
) -> dict[str, dict[str, float]]:
    """The shadow's and the log-only estimate's per-turn calls and nightly decisions against gold (see the module
    docstring). Only replayed turns can change under gold: elsewhere the candidate sends the logged text. Decisions
    follow ``learn.shadow_accepts`` with ``margin`` (default: ``LearnConfig.shadow_margin``)."""
    from selflearn.learners.learn import LearnConfig
    from selflearn.learners.shadow import shadow_accepts

    margin = LearnConfig().shadow_margin if margin is None else margin
    tallies = {"shadow": _Tally(), "log_only": _Tally()}
    for _night, frame in nights:
        n = max(frame.height, 1)
        gold_fix = gold_break = 0
        calls = {name: [0.0, 0.0] for name in tallies}
        for row in frame.iter_rows(named=True):
            g = gold.get(row["turn_id"])
            fixed = broken = False
            if row["replayed"] and g is not None:
                before = understood(row["before_status"], row["before_intent"], row["before_slots"], g)
                after = understood(row["after_status"], row["after_intent"], row["after_slots"], g)
                fixed, broken = after and not before, before and not after
            gold_fix += fixed
            gold_break += broken
            for name, (fix, brk) in {
                "shadow": (row["would_fix"], row["would_break"]),
                "log_only": (row["log_only_fix"], row["log_only_break"]),
            }.items():
                tally = tallies[name]
                calls[name][0] += fix
                calls[name][1] += brk
                tally.est_fixes += fix > 0
                tally.est_fixes_confirmed += fix > 0 and fixed
                tally.est_breaks += brk > 0
                tally.est_breaks_confirmed += brk > 0 and broken
                tally.gold_breaks_caught += brk > 0 and broken
        gold_delta = (gold_break - gold_fix) / n
        for name, tally in tallies.items():
            est_delta = (calls[name][1] - calls[name][0]) / n
            accepts = shadow_accepts(calls[name][0], calls[name][1], margin)
            tally.nights += 1
            tally.accepted += accepts
            tally.decisions_right += accepts == (gold_delta <= 0)
            tally.gold_fixes += gold_fix
            tally.gold_breaks += gold_break
            tally.errors.append(abs(est_delta - gold_delta))
    return {name: tally.metrics() for name, tally in tallies.items()}
