"""Routines: the goal behind a routine's fixed wording ("movie time" said every evening), found once per wording."""

from __future__ import annotations

import random
from dataclasses import replace

from rapidfuzz import fuzz, process

from selflearn.sim.goals import Goal, GoalFactory
from selflearn.sim.phrasing import CANONICAL, first_wordings, fits, pool, render
from selflearn.sim.users import SimUser


def routine_goal(factory: GoalFactory, user: SimUser, area: str, text: str) -> Goal | None:
    """The goal behind a routine's fixed wording: of many candidate goals, the one whose usual wordings match it
    best (ties go to the speaker's room). Drawn from a text-seeded generator, so the same routine means the same
    goal every day."""
    rng = random.Random(f"routine:{factory.home.id}:{user.id}:{text}")
    said = text.lower()
    words = set(said.split()) - {"the", "a", "to", "in", "on", "of"}
    candidates: dict[str, list[str]] = {}
    for kind in factory.kinds:
        if kind != "impossible":
            wordings = (*first_wordings(kind), *CANONICAL.get(kind, ()), *pool(kind))
            templates = [t for t in wordings if set(t.split()) & words]  # shares a literal word with the routine
            if templates:
                candidates[kind] = templates

    def best_of(kind: str, draws: int) -> tuple[float, Goal] | None:
        top: tuple[float, Goal] | None = None
        for _ in range(draws):
            goal = factory.make(kind, user.person, user.tastes, area, rng)
            fitting = [render(t, goal) for t in candidates[kind] if fits(t, goal)]
            nearest = process.extractOne(said, fitting, scorer=fuzz.ratio)
            score = (nearest[1] if nearest else 0.0) + 2.0 * (goal.slots.get("area") == area)
            if top is None or score > top[0]:
                top = (score, goal)
        return top

    # a few draws per kind to find the likely kinds, then many draws among the three best for the right slots
    rough = sorted(((best_of(k, 4), k) for k in candidates), key=lambda x: -(x[0][0] if x[0] else 0.0))
    best: tuple[float, Goal] | None = None
    for first, kind in rough[:3]:
        for found in (first, best_of(kind, 25)):
            if found is not None and (best is None or found[0] > best[0]):
                best = found
    return None if best is None else replace(best[1], text=text)
