"""gold.py: every gold metric once, and the callers (loop, simulator stats, suites) agree on the same turns."""

from __future__ import annotations

import polars as pl
import pytest

from selflearn import gold as gm
from selflearn.eval.suites.rewrite import defect_rate as rewrite_defect_rate
from selflearn.eval.suites.signals import gold_defects
from selflearn.home import shipped_homes
from selflearn.schema import Gold, Turn, to_arrow
from selflearn.sim import Simulation
from selflearn.sim.loop import day_stats
from selflearn.sim.run import defect_stats


@pytest.fixture(scope="module")
def day() -> tuple[list[Turn], list[Gold]]:
    log = Simulation(shipped_homes(), seed=5).run_day(0)
    return log.turns, log.gold


def test_the_callers_agree_on_the_defect_rate(day: tuple[list[Turn], list[Gold]]) -> None:
    turns, gold = day
    truth = {g.turn_id: g for g in gold}
    asked = gm.requests(turns)
    assert 0 < len(asked) <= len(turns)
    rate = gm.defect_rate(gm.of_turns(asked, truth))
    by_hand = sum(truth[t.turn_id].failure_point != "correct" for t in asked) / len(asked)
    assert 0 < rate < 1 and rate == pytest.approx(by_hand)
    stats = day_stats(0, turns, gold)
    assert stats.defect_rate == pytest.approx(rate)
    assert sum(stats.by_failure_point.values()) == pytest.approx(rate)
    assert rewrite_defect_rate(asked, truth) == pytest.approx(rate)
    asked_gold = [truth[t.turn_id] for t in asked]
    sim = defect_stats(asked_gold)
    assert sim["defect_rate"] == pytest.approx(rate)
    assert sim["goal_success_rate"] == pytest.approx(stats.goal_success)


def test_impossible_requests_are_a_parameter_not_a_variant(day: tuple[list[Turn], list[Gold]]) -> None:
    _, gold = day
    frame = pl.from_arrow(to_arrow(gold, Gold))
    assert isinstance(frame, pl.DataFrame)
    per_turn = gold_defects(frame)["gold_defect"].to_list()
    assert per_turn == [gm.is_defect(g, impossible=False) for g in gold]
    assert gm.defect_rate(gold, impossible=False) <= gm.defect_rate(gold)
    impossible = [g.model_copy(update={"is_impossible": True}) for g in gold if g.failure_point != "correct"]
    assert impossible
    assert gm.defect_rate(impossible) == 1.0 and gm.defect_rate(impossible, impossible=False) == 0.0


def test_goal_success_is_per_goal(day: tuple[list[Turn], list[Gold]]) -> None:
    _, gold = day
    goals = {g.goal_id for g in gold}
    met = {g.goal_id for g in gold if g.goal_success}
    assert gm.goal_success_rate(gold) == pytest.approx(len(met) / len(goals))


def test_the_fpi_reference_treats_the_annotator_like_the_truth(day: tuple[list[Turn], list[Gold]]) -> None:
    _, gold = day
    recovered = [g for g in gold if g.goal_success and g.failure_point != "correct"]
    assert recovered and all(gm.fpi_reference(g) == "correct" for g in recovered)
    failed = [g for g in gold if not g.goal_success]
    assert all(gm.fpi_reference(g) == g.failure_point for g in failed)
    labelled = [g for g in gold if gm.annotator(g, "single", "failure_point") is not None]
    for g in labelled:
        success = gm.annotator(g, "single", "goal_success")
        assert gm.fpi_reference(g, "single") == ("correct" if success else gm.annotator(g, "single", "failure_point"))
