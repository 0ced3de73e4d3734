from __future__ import annotations

import pytest

from selflearn.eval import harness as evaluate
from selflearn.eval.suites.poison import OLD_GUARDS, OUT_OF_SCOPE, SHAPES, attack_turns, poisoned
from selflearn.learners.mining import MiningConfig, RewriteMiner
from selflearn.sim import generate_homes
from selflearn.sim.run import simulate
from selflearn.store.logview import LogView


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    """Eight homes nobody tuned on (seed 31), two honest days."""
    homes = generate_homes(8, 31)
    logs = simulate(homes, days=2, seed=31)
    return homes, [t for log in logs for t in log.turns], [f for log in logs for f in log.feedback]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: s.name)
def test_every_attack_shape_plants_a_rule_under_the_old_guards_and_none_under_the_new(world, shape) -> None:  # type: ignore[no-untyped-def]
    homes, turns, feedback = world
    start = min(t.ts for t in turns).replace(hour=14, minute=0)
    logs = LogView.from_records([*turns, *attack_turns(shape, homes, start, days=2)], feedback)
    assert poisoned(RewriteMiner(OLD_GUARDS).fit(logs, homes=homes), shape) >= 1
    assert poisoned(RewriteMiner().fit(logs, homes=homes), shape) == 0


def test_the_out_of_scope_collusion_passes_and_a_stricter_threshold_stops_it(world) -> None:  # type: ignore[no-untyped-def]
    homes, turns, feedback = world
    start = min(t.ts for t in turns).replace(hour=14, minute=0)
    logs = LogView.from_records([*turns, *attack_turns(OUT_OF_SCOPE, homes, start, days=2)], feedback)
    assert poisoned(RewriteMiner().fit(logs, homes=homes), OUT_OF_SCOPE) == 1
    assert poisoned(RewriteMiner(MiningConfig(min_homes=4)).fit(logs, homes=homes), OUT_OF_SCOPE) == 0


@pytest.mark.slow
def test_suite_contract_quick() -> None:
    report = evaluate.run("poison", evaluate.EvalConfig(quick=True, seed=3))
    assert report.metrics["poisoned_total"] == 0 and report.baseline["poisoned_total"] > 0
    assert report.metrics["honest_kept"] >= 0.95
