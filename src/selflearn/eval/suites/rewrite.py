"""Eval suite ``rewrite``: learn on days 1..k of a seeded world, then replay held-out days three ways — no rewriting,
global rules only, global + personal — and compare defect rates by gold.

Arms diverge after the first rewrite (people react to different answers), so wins and losses are counted per
rewritten turn against its counterfactual: the same heard text through a runtime without rewriting (``win_loss``).
With ``--home PATH`` the world is the generated homes plus that home, and only that home's turns are evaluated.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from selflearn import gold as gold_metrics
from selflearn import progress
from selflearn.artifacts import ArtifactStore
from selflearn.eval import harness as evaluate
from selflearn.home import Home
from selflearn.learners.mining import RewriteTables
from selflearn.runtime.form_index import OnlineConfig
from selflearn.runtime.rewriter import OnlineRewriter
from selflearn.schema import Feedback, Gold, Turn, to_arrow
from selflearn.sim.loop import eval_world

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    homes: int
    """Homes simulated."""
    train_days: int
    """Days learned from."""
    eval_days: int
    """Days scored after learning."""


QUICK = Plan(homes=12, train_days=6, eval_days=1)
# The global layer only exists across many people (k-anonymity: >= 5 distinct users per rule), so the full run
# simulates 128 homes (~320 people); with 32 homes (~80 people) it found 11 global rules and -9.5 % defects.
FULL = Plan(homes=128, train_days=10, eval_days=3)


def defect_rate(turns: Sequence[Turn], gold: dict[str, Gold]) -> float:
    return gold_metrics.defect_rate([gold[t.turn_id] for t in turns])


def understood(turn: Turn, gold: Gold) -> bool:
    """Did this interpretation get the true intent and every true slot (the simulator judge's NLU/ER checks)?"""
    from selflearn.sim.judge import slot_matches

    return (
        turn.result_status == "success"
        and turn.nlu_intent == gold.true_intent
        and all(slot_matches(turn.nlu_slots.get(k), str(v)) for k, v in gold.true_slots.items())
    )


def win_loss(turns: Sequence[Turn], gold: dict[str, Gold], homes: Sequence[Home]) -> tuple[int, int, float]:
    """Per rewritten turn, the counterfactual: the same heard text through a runtime without rewriting. A win is a
    turn gold calls correct whose original text would not have been understood; a loss is a defective turn whose
    original text would have been. Also returns how often ``understood`` agrees with gold on unrewritten turns
    (the counterfactual judge's own accuracy)."""
    from selflearn.runtime.runtime import Runtime

    plain = {h.id: Runtime(h) for h in homes}
    wins = losses = 0
    for t in turns:
        if t.rewrite_source == "none" or gold[t.turn_id].true_intent is None:
            continue
        cf = plain[t.home_id].interpret(t.asr_text, user_id=t.user_id, endpoint_id=t.device_id, now=t.ts).turn
        ok_now = gold[t.turn_id].failure_point == "correct"
        ok_before = understood(cf, gold[t.turn_id])
        wins += ok_now and not ok_before
        losses += ok_before and not ok_now
    checked = [t for t in turns if t.rewrite_source == "none" and gold[t.turn_id].true_intent is not None]
    agree = sum(understood(t, gold[t.turn_id]) == (gold[t.turn_id].failure_point == "correct") for t in checked)
    return wins, losses, agree / max(len(checked), 1)


def rephrase_f1(
    turns: Sequence[Turn], feedback: Sequence[Feedback], gold: Sequence[Gold], *, quick: bool, seed: int
) -> dict[str, float]:
    """Rephrase detection on the training logs vs gold links: the span model (weak labels) and the miner's rule,
    scored with the signals suite's ``rephrase_scores``."""
    from selflearn.eval.suites.signals import rephrase_scores
    from selflearn.learners.mining import MiningConfig, baseline_rephrase
    from selflearn.learners.signals import DefectSignals
    from selflearn.learners.span import SpanConfig, SpanLearner
    from selflearn.store.logview import LogView

    logger.info("rewrite: rephrase detection (span model vs rule)")
    scored = DefectSignals().score(LogView.from_records(turns, feedback))
    frame = pl.from_arrow(to_arrow(gold, Gold))
    assert isinstance(frame, pl.DataFrame)
    model = SpanLearner(SpanConfig(max_pairs=300 if quick else 3000, seed=seed)).fit_frame(scored)
    return {
        "rephrase_f1_model": rephrase_scores(scored, model.predict_next(scored), frame)["f1"],
        "rephrase_f1_baseline": rephrase_scores(scored, baseline_rephrase(scored, MiningConfig()), frame)["f1"],
    }


@evaluate.suite("rewrite")
def run(config: evaluate.EvalConfig) -> evaluate.EvalResult:
    from selflearn.learners.learn import learn
    from selflearn.sim import Simulation
    from selflearn.store.logview import LogView

    plan = QUICK if config.quick else FULL
    homes, focus = eval_world(plan.homes, config.seed, config.home)
    days = range(1, plan.train_days + 1)
    eval_days = plan.eval_days + (2 if focus else 0)  # one home says little a day: evaluate it on more days
    held_out = range(plan.train_days + 1, plan.train_days + eval_days + 1)
    with tempfile.TemporaryDirectory(dir=config.work_dir) as tmp:
        artifacts = ArtifactStore(Path(tmp) / "artifacts")
        sim = Simulation(homes, seed=config.seed)
        turns, feedback, gold = [], [], []
        for day in progress.track(days, "rewrite: training days"):
            logger.info(f"rewrite: training day {day}/{plan.train_days}")
            log = sim.run_day(day)
            turns += log.turns
            feedback += log.feedback
            gold += log.gold
        logger.info(f"rewrite: learning from {len(turns)} turns")
        report = learn(LogView.from_records(turns, feedback), artifacts, config=None, homes=homes)
        current = artifacts.current_dir()
        current_tables = RewriteTables() if current is None else RewriteTables.load(current)
        arms: dict[str, tuple[list[Turn], dict[str, Gold]]] = {}
        for arm, layers in (("none", ()), ("global", ("global",)), ("personal", ("personal", "global"))):
            rewriter = None
            if layers and current is not None:
                rewriter = OnlineRewriter.load(current, config=replace(OnlineConfig(), layers=layers))
            arm_sim = Simulation(homes, seed=config.seed)
            arm_turns: list[Turn] = []
            arm_gold: dict[str, Gold] = {}
            for day in progress.track(held_out, f"rewrite: arm {arm}"):
                logger.info(f"rewrite: arm {arm}, held-out day {day}")
                log = arm_sim.run_day(day, rewriter=rewriter)
                arm_turns += [t for t in log.turns if focus is None or t.home_id == focus]
                arm_gold |= {g.turn_id: g for g in log.gold}
            arms[arm] = (arm_turns, arm_gold)
    rephrase = rephrase_f1(turns, feedback, gold, quick=config.quick, seed=config.seed)
    violating, unguarded = hygiene_violations(turns, feedback, homes, current_tables)
    rates = {arm: defect_rate(t, g) for arm, (t, g) in arms.items()}
    p_turns, p_gold = arms["personal"]
    logger.info("rewrite: counterfactual replay of rewritten turns")
    wins, losses, agreement = win_loss(p_turns, p_gold, homes)
    metrics = {
        "defect_rate_none": rates["none"],
        "defect_rate_global": rates["global"],
        "defect_rate_personal": rates["personal"],
        "reduction_global": (rates["none"] - rates["global"]) / rates["none"] if rates["none"] else 0.0,
        "reduction_personal_extra": (
            (rates["global"] - rates["personal"]) / rates["global"] if rates["global"] else 0.0
        ),
        "wins": wins,
        "losses": losses,
        "win_loss": wins / max(losses, 1),
        "counterfactual_judge_agreement": agreement,
        "rewrite_rate": sum(t.rewrite_source != "none" for t in p_turns) / max(len(p_turns), 1),
        **rephrase,
        "global_rules": report.global_rewrites,
        "global_pattern_rules": report.global_patterns,
        "personal_rules": report.personal_rewrites,
        "hygiene_violations": violating,
    }
    baseline = {"defect_rate_none": rates["none"], "hygiene_violations": unguarded}
    return evaluate.EvalResult(n=len(p_turns), metrics=metrics, baseline=baseline)


def hygiene_violations(
    turns: Sequence[Turn], feedback: Sequence[Feedback], homes: Sequence[Home], published: RewriteTables
) -> tuple[int, int]:
    """Published rules (every layer) that change the device kind or area named or rewrite a bare fragment, and
    the same count for the same logs mined without the hygiene guard (the baseline)."""
    from selflearn.learners.hygiene import Hygiene, violations
    from selflearn.learners.mining import MiningConfig, RewriteMiner
    from selflearn.store.logview import LogView

    logger.info("rewrite: rule hygiene of the published rules vs the same logs mined without the guard")
    hygiene = Hygiene.for_homes(homes)
    unguarded = RewriteMiner(MiningConfig(hygiene=False)).fit(LogView.from_records(turns, feedback), homes=homes)

    def count(tables: RewriteTables) -> int:
        rules = pl.concat([tables.global_table, tables.pattern_table, tables.personal_table])
        return sum(v is not None for v in violations(hygiene, rules.iter_rows(named=True)))

    return count(published), count(unguarded)
