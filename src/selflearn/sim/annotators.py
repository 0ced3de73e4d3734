"""Simulated human annotators: the gold labels as a person reviewing the log would give them, with mistakes.

Real annotation of assistant logs is noisy (a reviewer misjudges goal success, blames the wrong stage, picks a
neighbouring intent), which is why automated ground truth is compared against a *single* annotator and against the
*majority of three*. Each annotator flips each label independently with the configured error rates.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from selflearn.schema import FAILURE_POINTS


@dataclass(frozen=True)
class AnnotatorNoise:
    goal_success: float = 0.12
    """P(a simulated annotator flips the goal-success label)."""
    failure_point: float = 0.2
    """P(they pick a wrong failure point)."""
    intent: float = 0.08
    """P(they give a wrong intent)."""


def annotate(
    truth: dict[str, Any], intents: list[str], rng: random.Random, noise: AnnotatorNoise = AnnotatorNoise()
) -> dict[str, dict[str, Any]]:
    """``truth`` has goal_success, failure_point, intent; returns {"single": labels, "majority": labels}."""
    votes = []
    for _ in range(3):
        success = truth["goal_success"] if rng.random() >= noise.goal_success else not truth["goal_success"]
        fp = truth["failure_point"]
        if rng.random() < noise.failure_point:
            fp = rng.choice([f for f in FAILURE_POINTS if f != fp])
        intent = truth["intent"]
        if rng.random() < noise.intent and intents:
            intent = rng.choice(intents)
        votes.append({"goal_success": success, "failure_point": fp, "intent": intent})
    majority = {key: _vote([v[key] for v in votes]) for key in ("goal_success", "failure_point", "intent")}
    return {"single": votes[0], "majority": majority}


def _vote(values: list[Any]) -> Any:
    """Most common value; a three-way tie goes to the first annotator."""
    counts = Counter(values)
    best = max(counts.values())
    return next(v for v in values if counts[v] == best)
