"""The daily cycle: simulate a day through the runtime, learn from all logs so far overnight, swap in the new
artifact set, continue. Defect rates per day come from gold (evaluation only; the learners see logs only)."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from selflearn import gold as gold_metrics
from selflearn.artifacts import ArtifactStore
from selflearn.home import Home, load_home
from selflearn.runtime.form_index import OnlineConfig
from selflearn.runtime.rewriter import LiveRewriter
from selflearn.schema import DEFECT_POINTS, Feedback, Gold, Turn

FAILURE_POINTS = DEFECT_POINTS  # the stages a defect is counted at (gold)
logger = logging.getLogger(__name__)


def eval_world(n_homes: int, seed: int, extra: Path | None) -> tuple[list[Home], str | None]:
    """The seeded generated homes, plus ``extra`` (an unseen home YAML) if given; returns the home to evaluate on
    (None: all of them)."""
    from selflearn.sim import generate_homes

    homes = generate_homes(n_homes, seed)
    if extra is None:
        return homes, None
    home = load_home(extra)
    return [*homes, home], home.id


@dataclass(frozen=True)
class DayStats:
    day: int
    """Day number, 1-based."""
    turns: int
    """Turns of the day."""
    defect_rate: float
    """Share of turns whose gold failure point is not "correct"."""
    by_failure_point: dict[str, float]
    """Share of turns per failure point (defects only)."""
    goal_success: float
    """Share of the day's goals that ended in success."""
    rewrite_rate: float
    """Share of turns the online rewriter changed (rules or retrieval)."""
    rules_global: int
    """Global rewrite rules in force during the day."""
    rules_personal: int
    """Personal rewrite rules in force during the day, all users together."""
    artifact_version: str | None
    """The artifact set the day ran on (None: nothing learned yet)."""
    seconds: float
    """Wall-clock time to simulate and learn the day, in seconds."""
    retrieval_rate: float = 0.0
    """Share of turns retrieval over what works rewrote (a failing request's fallback)."""


def day_stats(
    day: int,
    turns: Sequence[Turn],
    gold: Sequence[Gold],
    *,
    rules: tuple[int, int] = (0, 0),
    version: str | None = None,
    seconds: float = 0.0,
) -> DayStats:
    """One day's numbers, joined to gold by ``turn_id`` (turns without gold count as correct). Turns the teacher
    handled (a lesson, an answer to "Did I get that right?") are talk about requests, not requests: left out."""
    turns = gold_metrics.requests(turns)
    golds = gold_metrics.of_turns(turns, {g.turn_id: g for g in gold})
    n = max(len(turns), 1)
    return DayStats(
        day=day,
        turns=len(turns),
        defect_rate=gold_metrics.defect_rate(golds),
        by_failure_point=gold_metrics.failure_points(golds),
        goal_success=gold_metrics.goal_success_rate(gold),
        rewrite_rate=sum(t.rewrite_source != "none" for t in turns) / n,
        retrieval_rate=sum(t.rewrite_source == "retrieval" for t in turns) / n,
        rules_global=rules[0],
        rules_personal=rules[1],
        artifact_version=version,
        seconds=seconds,
    )


@dataclass
class LoopResult:
    days: list[DayStats] = field(default_factory=list)
    """Per-day statistics, in order."""
    turns: list[Turn] = field(default_factory=list)
    """Every turn of every day."""
    gold: list[Gold] = field(default_factory=list)
    """The simulator's truth behind them."""
    feedback: list[Feedback] = field(default_factory=list)
    """Explicit feedback given over the run."""
    rewrite_cpu_ms: list[float] = field(default_factory=list)
    """Thread CPU time of each rewriter call, in ms."""
    day_ends: list[int] = field(default_factory=list)
    """Turns so far (``len(turns)``) at the end of each day."""

    def metrics(self, control: Sequence[DayStats] = ()) -> dict[str, float]:
        """Day-1-to-last drop; with a control run (same days, nothing learned) also the reduction against it, on
        the last day and averaged over days 2..N (day-to-day variation of the world cancels out)."""
        first, last = self.days[0].defect_rate, self.days[-1].defect_rate
        out = {
            "defect_rate_day1": first,
            "defect_rate_last": last,
            "relative_drop": (first - last) / first if first else 0.0,
        }
        out |= {f"defect_rate_day{d.day}": d.defect_rate for d in self.days}
        if self.rewrite_cpu_ms:
            ordered = sorted(self.rewrite_cpu_ms)
            out["rewrite_cpu_ms_mean"] = sum(ordered) / len(ordered)
            out["rewrite_cpu_ms_p99"] = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        if control:
            out |= {f"control_defect_rate_day{d.day}": d.defect_rate for d in control}
            base_last = control[-1].defect_rate
            out["reduction_vs_control_last"] = (base_last - last) / base_last if base_last else 0.0
            learned = [d.defect_rate for d in self.days[1:]]
            base = [d.defect_rate for d in control[1:]]
            if base and sum(base):
                out["defect_rate_mean_after_day1"] = sum(learned) / len(learned)
                out["control_defect_rate_mean_after_day1"] = sum(base) / len(base)
                out["reduction_vs_control_mean"] = 1 - sum(learned) / sum(base)
        return out


def rule_counts(rewriter: LiveRewriter | None) -> tuple[int, int]:
    """Global forms and patterns in force, and users with a personal table in the current artifact set."""
    current = rewriter.current if rewriter else None
    if current is None or current.artifact_dir is None:
        return (0, 0)
    personal = current.artifact_dir / "personal"
    users = sum(1 for _ in personal.glob("*/rewrites.parquet")) if personal.exists() else 0
    return (len(current.global_index) + len(current.pattern_index), users)


def run_loop(
    homes: Sequence[Home],
    *,
    days: int,
    seed: int,
    artifacts: ArtifactStore,
    learn_config: Any = None,
    sim_config: Any = None,
    online: OnlineConfig | None = None,
    on_day: Callable[[DayStats], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
    on_log: Callable[[Any], None] | None = None,
    on_shadow: Callable[[int, Any, Any], None] | None = None,
    focus: str | None = None,
    learning: bool = True,
    teaching: bool = False,
    retrieval: bool = True,
) -> LoopResult:
    """Simulate ``days`` days; after each but the last, ``learn`` on every log so far and swap in the result.

    Day 1 runs without rewriting whatever ``artifacts`` already holds: the rewriter follows only sets this run
    publishes. Daily stats cover every home, or only the home ``focus`` (an unseen home added to the world).
    ``learning=False`` replays the same seeded days with nothing learned: the control curve. ``teaching=True`` also
    lets people teach and answer "Did I get that right?" (``Teaching``), as in ``selflearn demo``. ``retrieval``: the
    runtime falls back on retrieval over what works, as the CLI and service do: from day 1 over each home's own
    commands (the day-0 index, ``runtime.index_cache``), after each published night over the set's retrieval tables;
    ``False`` leaves it out (the comparison).
    ``on_log`` receives each day's ``DayLog`` (e.g. to keep it in a ``Store``); ``on_shadow(night, tables,
    shadow_turns)`` each night's shadow check (``learn``'s ``on_shadow``)."""
    from selflearn.learners.learn import LearnConfig, learn
    from selflearn.runtime.index_cache import shared_cache
    from selflearn.runtime.retrieval import Retrieval
    from selflearn.sim import SimConfig, Simulation
    from selflearn.store.logview import LogView

    stage = on_stage or logger.debug
    config = sim_config or SimConfig()
    learn_config = learn_config or LearnConfig(online=online or OnlineConfig())  # the shadow replays this rewriter
    with tempfile.TemporaryDirectory() as scratch:
        people = Teaching(Path(scratch)) if teaching else None
        sim = Simulation(
            homes,
            seed=seed,
            config=replace(config, teach_probability=0.6) if people else config,
            teaching=people.behaviour if people else None,
        )
        rewriter: LiveRewriter | None = None
        cache = shared_cache()
        day0 = Retrieval(cache=cache) if retrieval else None
        fallback = partial(Retrieval.load, cache=cache) if retrieval else None
        result = LoopResult()
        for day in range(1, days + 1):
            start = time.perf_counter()
            stage(f"day {day}/{days}: simulating {len(homes)} homes")
            kwargs = people.day_kwargs(rewriter) if people else {"rewriter": rewriter}
            retriever = rewriter if retrieval and rewriter is not None else day0
            log = sim.run_day(day, **kwargs, retriever=retriever)
            if on_log:
                on_log(log)
            result.turns += log.turns
            result.gold += log.gold
            result.feedback += log.feedback
            result.day_ends.append(len(result.turns))
            current = rewriter.current if rewriter else None
            shown = [t for t in log.turns if focus is None or t.home_id == focus]
            stats = day_stats(
                day,
                shown,
                log.gold,
                rules=rule_counts(rewriter),
                version=current.artifact_dir.name if current and current.artifact_dir else None,
                seconds=time.perf_counter() - start,
            )
            result.days.append(stats)
            if on_day:
                on_day(stats)
            if learning and day < days:
                stage(f"night {day}: learning from {len(result.turns):,} turns")
                report = learn(
                    LogView.from_records(result.turns, result.feedback),
                    artifacts,
                    config=learn_config,
                    homes=homes,
                    on_shadow=None if on_shadow is None else partial(on_shadow, day),
                )
                if report.published:
                    if rewriter is None:
                        rewriter = LiveRewriter(artifacts, config=online, check_seconds=float("inf"), fallback=fallback)
                    else:
                        rewriter.reload_if_changed()
        result.rewrite_cpu_ms = [1000.0 * s for s in rewriter.cpu_seconds] if rewriter else []
        return result


class Teaching:
    """The teach/feedback side of the assistant for one loop: taught preferences, "Did I get that right?", and a
    user's corrections applied before the learned rewriter (pending corrections kept under ``root``)."""

    def __init__(self, root: Path) -> None:
        from selflearn.runtime.feedback import FeedbackPolicy, PendingRewrites
        from selflearn.sim.teaching import TeachingUsers
        from selflearn.teach.preferences import MemoryPreferences
        from selflearn.teach.teacher import Teacher

        self.behaviour = TeachingUsers()
        self.policy = FeedbackPolicy()
        self.preferences = MemoryPreferences()
        self.pending = PendingRewrites(root)
        self.teacher = Teacher(self.preferences, policy=self.policy, pending=self.pending)

    def day_kwargs(self, rewriter: LiveRewriter | None) -> dict[str, Any]:
        from selflearn.runtime.feedback import FeedbackRewriter

        return {
            "rewriter": FeedbackRewriter(self.pending, rewriter),
            "preferences": self.preferences.preferences,
            "feedback_policy": self.policy,
            "teacher": self.teacher,
        }
