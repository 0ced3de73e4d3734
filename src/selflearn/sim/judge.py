"""Did a turn meet its goal, and if not, which stage went wrong? The simulator's truth, from the outcome.

Success means: the runtime took an accepted intent, carried it out (``success``), the devices the person meant are
in the state they wanted, and the slots the person cared about have the right value. Otherwise the first stage
that went wrong is blamed: ``nlu`` (no/wrong intent, misread number), ``er`` (no or wrong device, wrong
city/team/genre/cuisine said out loud), ``result`` (understood and resolved, but not carried out, or a taste the
person left to the assistant filled wrongly). ``asr`` is decided by the simulator by replaying the true text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from selflearn.schema import FailurePoint, Turn
from selflearn.sim.goals import ENTITY_SLOTS, Goal

_NON_WORD = re.compile(r"[^\w\s]")


def _slot_value(value: Any) -> str:
    """A slot value for comparison: a whole float as an integer, lowercase words without punctuation (a value, not
    an utterance: ``text.normalize`` keeps apostrophes)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(_NON_WORD.sub(" ", str(value).lower()).split())


def slot_matches(actual: Any, expected: str) -> bool:
    if actual is None:
        return False
    a, e = _slot_value(actual), _slot_value(expected)
    return bool(a) and (a == e or f" {e} " in f" {a} " or f" {a} " in f" {e} ")


def judge(goal: Goal, turn: Turn, state: Mapping[str, Mapping[str, Any]]) -> tuple[bool, FailurePoint]:
    """(goal met, failure point) for one turn of an addressed, possible goal."""
    status = turn.result_status
    if status == "no_match" or turn.nlu_intent not in goal.intents:
        return False, "nlu"
    if status == "no_entity":
        untold = [k for k in goal.implicit if turn.nlu_slots.get(k) is None]
        return False, "result" if untold else "er"
    if status != "success":
        return False, "result"
    if goal.effects:
        # the devices the turn was about: resolved by ER, or picked by the executor itself (nearest thermostat)
        execute = turn.trace.get("execute")
        changed = execute.get("changed") if isinstance(execute, dict) else None
        touched = set(turn.resolved_entities.get("devices") or ()) | set(changed or ())
        done = all(state.get(d, {}).get(k) == v for d, k, v in goal.effects)
        if not goal.targets <= touched and not (done and not touched):
            return False, "er"
        if not done:
            return False, "result"
    for key, value in goal.expect.items():
        if not slot_matches(turn.nlu_slots.get(key), value):
            if key in goal.implicit:
                return False, "result"
            return False, "er" if key in ENTITY_SLOTS else "nlu"
    return True, "correct"


def judge_unaddressed(goal: Goal, turn: Turn) -> tuple[bool, FailurePoint]:
    """Chatter should be ignored; an impossible request should be declined, not acted on."""
    if not goal.addressed:
        return (True, "correct") if turn.result_status == "ignored" else (False, "false_wake")
    declined = turn.result_status in ("no_match", "unsupported", "ignored")
    return (True, "correct") if declined else (False, "nlu")
