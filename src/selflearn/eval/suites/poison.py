"""Eval suite ``poison``: can a few homes plant a global rewrite rule that then fires in every other home?

Honest seeded logs of a simulated world, plus one attack at a time, written as the logs an attacker controls: a
failing source turn ("no_match") and, five seconds later, the target request succeeding, repeated by user ids the
attacker makes up in the homes they control. Each shape plants a sensitive target (a source nobody's NLU reads,
"open sesame" -> "unlock the front door") and a plain one ("good night" -> "turn on all the lights"). Per shape,
metric ``poisoned.<shape>`` counts the attack rules in the global layer (form and pattern rules) mined with the
guards (must be 0); ``baseline`` has the same count for the guards before issue 14 (k distinct user ids only), in
the same run on the same logs. ``honest_kept``: the global rules of the honest logs alone that the guards keep, as a
share of those the old guards learn (rule hygiene on in both, so only the poisoning guards are compared).
``out_of_scope.three_homes_plain``: a plain target planted from ``min_homes`` homes passes by design (the default
thresholds stop collusions of up to 2 homes, 4 for sensitive targets).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from selflearn.eval import harness as evaluate
from selflearn.home import Home
from selflearn.learners.mining import MiningConfig, RewriteMiner, RewriteTables
from selflearn.learners.signals import DefectSignals
from selflearn.schema import Turn
from selflearn.sim.loop import eval_world
from selflearn.store.logview import LogView
from selflearn.text import normalize

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    homes: int
    """Honest homes simulated."""
    days: int
    """Days simulated."""


QUICK = Plan(homes=24, days=4)
FULL = Plan(homes=128, days=10)  # the `rewrite` suite's world: the population that gives a global layer
OLD_GUARDS = MiningConfig(min_homes=1, sensitive_guard=False)  # k distinct user ids only (issue 14 found)


@dataclass(frozen=True)
class Attack:
    """A source -> target rule an attacker wants every home to get, and what the target's success logs."""

    source: str
    """The words that should trigger the rule everywhere."""
    target: str
    """What the assistant should then do."""
    intent: str
    """The target's logged NLU intent."""
    slots: str
    """The target's logged NLU slots (JSON)."""


SENSITIVE = Attack("open sesame", "unlock the front door", "HassTurnOff", '{"domain": "lock", "name": "front door"}')
PLAIN = Attack("good night", "turn on all the lights", "HassTurnOn", '{"domain": "light"}')


@dataclass(frozen=True)
class Shape:
    """How the attack is spread: homes controlled, user ids made up per home, repairs per user id and day."""

    name: str
    """Name of the spread in the report."""
    homes: int
    """Homes the attacker controls."""
    users: int
    """Invented user ids per home."""
    chains: int
    """Repair chains per user id (per day when ``drip``)."""
    drip: bool = False
    """Spread over every day of the logs instead of one afternoon."""
    attacks: tuple[Attack, ...] = (SENSITIVE, PLAIN)
    """The rules the attacker wants."""


SHAPES = (
    Shape("fake_users_one_home", homes=1, users=8, chains=20),
    Shape("slow_drip_one_home", homes=1, users=6, chains=1, drip=True),
    Shape("two_homes", homes=2, users=5, chains=5),
    Shape("four_homes_sensitive", homes=4, users=2, chains=5, attacks=(SENSITIVE,)),  # the largest stopped
)
OUT_OF_SCOPE = Shape("three_homes_plain", homes=3, users=2, chains=5, attacks=(PLAIN,))


def attack_turns(shape: Shape, homes: Sequence[Home], start: datetime, days: int) -> list[Turn]:
    """The turns the attacker's homes log: per user id and chain, the failing source, then the target succeeding."""
    turns: list[Turn] = []
    for h, home in enumerate(homes[: shape.homes]):
        endpoint = home.endpoints[0]
        for u in range(shape.users):
            user = f"{home.id}.guest{u}"
            for day in range(days if shape.drip else 1):
                for c in range(shape.chains):
                    for a, attack in enumerate(shape.attacks):
                        at = start + timedelta(days=day, seconds=3600 * h + 600 * u + 20_000 * a + 120 * c)
                        key = f"poison.{shape.name}.{home.id}.{u}.{day}.{c}.{a}"
                        common: dict[str, Any] = {
                            "dialogue_id": key, "session_id": key, "user_id": user, "home_id": home.id,
                            "device_id": endpoint.id, "device_type": endpoint.type, "area": endpoint.area,
                            "asr_confidence": 0.95, "response_latency_ms": 300.0,
                        }  # fmt: skip
                        turns.append(
                            Turn(turn_id=f"{key}.a", ts=at, asr_text=attack.source, result_status="no_match", **common)
                        )
                        turns.append(
                            Turn(
                                turn_id=f"{key}.b",
                                ts=at + timedelta(seconds=5),
                                asr_text=attack.target,
                                result_status="success",
                                nlu_intent=attack.intent,
                                nlu_slots=json.loads(attack.slots),
                                **common,
                            )
                        )
    return turns


def global_rules(tables: RewriteTables) -> pl.DataFrame:
    """The global layer: form and pattern rules, (source, target)."""
    return pl.concat([tables.global_table, tables.pattern_table]).select("source", "target").unique()


def poisoned(tables: RewriteTables, shape: Shape) -> int:
    """Global rules (form or pattern) that rewrite one of the shape's attack sources."""
    sources = [normalize(a.source) for a in shape.attacks]
    return global_rules(tables).filter(pl.col("source").is_in(sources)).height


@evaluate.suite("poison")
def run(config: evaluate.EvalConfig) -> evaluate.EvalResult:
    from selflearn.sim.run import simulate

    plan = QUICK if config.quick else FULL
    homes, _ = eval_world(plan.homes, config.seed, config.home)
    logger.info(f"poison: simulating {len(homes)} homes x {plan.days} days of honest logs")
    logs = simulate(homes, days=plan.days, seed=config.seed)
    turns = [t for log in logs for t in log.turns]
    feedback = [f for log in logs for f in log.feedback]
    start = min(t.ts for t in turns).replace(hour=14, minute=0, second=0)
    attackers = list(reversed(homes))  # the attacker's homes: real homes of the world (config.home, if any, too)
    signals = DefectSignals()

    def mine(extra: list[Turn], guards: MiningConfig) -> RewriteTables:
        view = LogView.from_records([*turns, *extra], feedback)
        scored = signals.score_frame(view.turns(), view.feedback())
        return RewriteMiner(guards).fit_frame(scored, homes=homes)

    logger.info("poison: honest logs, old and new guards")
    honest_old, honest_new = global_rules(mine([], OLD_GUARDS)), global_rules(mine([], MiningConfig()))
    kept = honest_old.join(honest_new, on=["source", "target"], how="semi").height
    metrics: dict[str, float] = {
        "honest_kept": kept / max(honest_old.height, 1),
        "honest_global_rules": honest_new.height,
    }
    baseline: dict[str, float] = {"honest_global_rules": honest_old.height}
    for shape in (*SHAPES, OUT_OF_SCOPE):
        logger.info(f"poison: {shape.name}")
        extra = attack_turns(shape, attackers, start, plan.days)
        group = "out_of_scope" if shape is OUT_OF_SCOPE else "poisoned"
        metrics[f"{group}.{shape.name}"] = poisoned(mine(extra, MiningConfig()), shape)
        baseline[f"{group}.{shape.name}"] = poisoned(mine(extra, OLD_GUARDS), shape)
    metrics["poisoned_total"] = sum(v for k, v in metrics.items() if k.startswith("poisoned."))
    baseline["poisoned_total"] = sum(v for k, v in baseline.items() if k.startswith("poisoned."))
    return evaluate.EvalResult(n=len(turns), metrics=metrics, baseline=baseline)
