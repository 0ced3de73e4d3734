"""Small synthetic dialogues with known truth, for testing the label and FPI models without the simulator.

Each goal is a request that may break at one stage (ASR, NLU, ER, result) or be a false wake; after a failure the
user rephrases (and then usually succeeds) or gives up. Truth follows the project's rule: a recovered error is
``correct``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from selflearn.schema import Turn

DEVICES = ["kitchen light", "bedroom fan", "hall lamp", "garage door", "living room tv"]
VERBS = [
    ("HassTurnOn", "turn on the {d}"),
    ("HassTurnOff", "switch off the {d}"),
    ("HassTurnOn", "please start the {d}"),
]
STAGES = ["correct"] * 5 + ["asr", "nlu", "er", "result", "false_wake"]


@dataclass
class SynthData:
    turns: list[Turn] = field(default_factory=list)
    gold: dict[str, dict[str, object]] = field(default_factory=dict)


def _turn(i: int, d: int, t: datetime, text: str, stage: str, intent: str, device: str, rng: random.Random) -> Turn:
    ok = stage == "correct"
    asr_conf = rng.uniform(0.3, 0.55) if stage == "asr" else rng.uniform(0.75, 0.99)
    status = {
        "correct": "success",
        "asr": "no_match",
        "nlu": "no_match",
        "er": "no_entity",
        "result": "failed",
        "false_wake": "no_match",
    }[stage]
    nlu_intent = None if status in ("no_match", "ignored") else intent
    score = rng.uniform(0.8, 1.0) if ok else rng.uniform(0.3, 0.6)
    ent_score = rng.uniform(0.2, 0.5) if stage == "er" else rng.uniform(0.8, 1.0)
    response = {
        "success": f"Done, the {device} is set.",
        "no_match": "Sorry, I didn't understand.",
        "no_entity": "Sorry, I can't find that device.",
        "failed": f"The {device} is not responding.",
        "ignored": "",
    }[status]
    return Turn(
        turn_id=f"t{i}",
        dialogue_id=f"d{d}",
        session_id=f"s{d}",
        user_id=f"u{d % 3}",
        home_id="h",
        device_id="spk",
        device_type="speaker",
        ts=t,
        asr_text=text,
        asr_confidence=asr_conf,
        nlu_intent=nlu_intent,
        nlu_slots={"name": device} if nlu_intent else {},
        nlu_confidence=score if nlu_intent else 0.0,
        resolved_entities={"name": device.replace(" ", "_")} if status == "success" else {},
        result_status=status,
        response_text=response,
        barge_in=stage in ("result",) and rng.random() < 0.3,
        response_latency_ms=rng.uniform(200, 900),
        trace={
            "nlu": {"hypotheses": [{"intent": intent, "score": score}, {"intent": "x", "score": score / 2}]},
            "er": {"candidates": [{"id": device, "score": ent_score}]},
        },
    )


def make_dialogues(n: int, seed: int = 0) -> SynthData:
    rng = random.Random(seed)
    data = SynthData()
    t0 = datetime(2026, 1, 1, 8, tzinfo=UTC)
    i = 0
    for d in range(n):
        t = t0 + timedelta(minutes=10 * d)
        for g in range(rng.choice([1, 1, 2])):
            intent, form = rng.choice(VERBS)
            device = rng.choice(DEVICES)
            text = form.format(d=device)
            stage = rng.choice(STAGES)
            goal = f"d{d}g{g}"
            if stage == "false_wake":
                text = rng.choice(["and then she said", "what a day", "hmm okay"])
            attempts = [stage]
            if stage not in ("correct", "false_wake") and rng.random() < 0.6:
                attempts.append("correct" if rng.random() < 0.8 else stage)
            success = attempts[-1] == "correct"
            first_id = f"t{i}"
            for k, st in enumerate(attempts):
                said = text if k == 0 else (text if st == "asr" else f"i said {text}")
                heard = said.replace(device.split()[-1], "flight") if st == "asr" else said
                turn = _turn(i, d, t, heard, st, intent, device, rng)
                data.turns.append(turn)
                data.gold[turn.turn_id] = {
                    "failure_point": "correct" if success else st,
                    "goal_id": goal,
                    "goal_success": success,
                    "true_intent": None if stage == "false_wake" else intent,
                    "true_slots": {} if stage == "false_wake" else {"name": device},
                    "is_rephrase_of": first_id if k else None,
                }
                i += 1
                t += timedelta(seconds=rng.uniform(4, 12))
            t += timedelta(seconds=90)
    return data
