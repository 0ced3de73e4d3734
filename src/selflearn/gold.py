"""Every gold metric, defined once: the suites, the daily loop, the simulator's stats, the report and the dashboard
call these instead of counting ``failure_point`` themselves.

A turn is a gold *defect* when its failure point is not ``correct`` (``DEFECT_POINTS``). Two choices differ
between the measurements and are parameters here, never silent variations: whether turns the teacher handled (a
lesson, an answer to "Did I get that right?", ``META_STATUSES``) count (the loop leaves them out: they are talk
about requests, not requests), and whether an impossible request that failed counts as a defect (the signals
suite leaves it out: being told the home cannot do it is the right answer). Goal success is per goal: a goal
succeeded when any of its turns reports so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from selflearn.schema import DEFECT_POINTS, Gold, Turn

if TYPE_CHECKING:
    from selflearn.store.logstore import Store

META_STATUSES = ("feedback", "teach")  # turns about the assistant (answers, lessons), not requests to it


def annotator(gold: Gold, who: str, key: str) -> Any:
    """A simulated annotator's label for one field (None when the simulator did not annotate it)."""
    labels = gold.annotator_labels.get(who)
    return labels.get(key) if isinstance(labels, dict) else None


def is_defect(gold: Gold, *, impossible: bool = True) -> bool:
    """The turn failed at some stage; ``impossible=False``: a failed impossible request is not a defect."""
    return gold.failure_point in DEFECT_POINTS and (impossible or not gold.is_impossible)


def requests(turns: Iterable[Turn]) -> list[Turn]:
    """The turns that ask the assistant for something (not the teacher's lessons and answers)."""
    return [t for t in turns if t.result_status not in META_STATUSES]


def of_turns(turns: Iterable[Turn], gold: Mapping[str, Gold]) -> list[Gold | None]:
    """The gold of each turn, in order (None: the turn has none, and counts as correct)."""
    return [gold.get(t.turn_id) for t in turns]


def failure_points(golds: Sequence[Gold | None]) -> dict[str, float]:
    """Share of the turns (their gold, ``of_turns``) failing at each stage of ``DEFECT_POINTS``."""
    counts = Counter(g.failure_point for g in golds if g is not None)
    return {p: counts[p] / max(len(golds), 1) for p in DEFECT_POINTS}


def defect_rate(golds: Sequence[Gold | None], *, impossible: bool = True) -> float:
    """Share of the turns (their gold, ``of_turns``) that are gold defects (``is_defect``)."""
    return sum(g is not None and is_defect(g, impossible=impossible) for g in golds) / max(len(golds), 1)


def goal_success_rate(gold: Iterable[Gold]) -> float:
    """Share of goals met (a goal is met when any of its turns says so)."""
    goals: dict[str, bool] = {}
    for g in gold:
        goals[g.goal_id] = goals.get(g.goal_id, False) or g.goal_success
    return sum(goals.values()) / max(len(goals), 1)


def fpi_reference(gold: Gold, who: str | None = None) -> str:
    """The FPI label: the simulator's stage, except that a turn whose goal was eventually met had its error
    recovered, so it is ``correct``. ``who`` applies the same rule to that annotator's own labels ("" when the
    annotator labelled nothing), so annotator and model are scored against the same reference."""
    if who is None:
        return "correct" if gold.goal_success else gold.failure_point
    success, stage = annotator(gold, who, "goal_success"), annotator(gold, who, "failure_point")
    if success is None or stage is None:
        return ""
    return "correct" if success else str(stage)


def defect_expr(*, impossible: bool = True) -> pl.Expr:
    """``is_defect`` over a gold frame (columns ``failure_point``, ``is_impossible``)."""
    defect = pl.col("failure_point").is_in(DEFECT_POINTS)
    return defect if impossible else defect & ~pl.col("is_impossible")


def turn_truth(store: Store) -> pl.DataFrame:
    """Per turn the store has gold for: ``true_defect`` (``is_defect``), for views that show the simulator's truth
    beside the signals (the dashboard) without reading gold themselves."""
    return store.gold().select("turn_id", true_defect=defect_expr())
