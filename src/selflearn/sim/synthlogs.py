"""Synthetic interaction logs at scale, generated vectorised (no NLU in the loop) for throughput benchmarks and tests.

The simulator (``selflearn.sim``) is the realistic source but runs the full pipeline per utterance; mining has to be
measured on millions of turns, so this module writes logs with the same shape directly: users in homes, sessions,
commands said in a known-bad form that fail (no match, or a wrong result the user barges in on), followed within
seconds by a rephrase that succeeds, repeats, or abandonment. It also returns the truth (defect, rephrase link) so
tests can check learners; learners never see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl

from selflearn.schema import ARROW_SCHEMAS, SCHEMA_VERSION, Turn

_ROOMS = ("kitchen", "bedroom", "living room", "office", "hallway", "garage", "bathroom", "porch", "attic", "den")
_THINGS = ("light", "lamp", "fan", "heater", "tv", "speaker", "blinds", "kettle", "plug", "radio")
_MISHEARD = {"light": "lite", "lamp": "lamb", "fan": "fun", "heater": "eater", "tv": "tea", "speaker": "beaker",
             "blinds": "blind", "kettle": "cattle", "plug": "plum", "radio": "rodeo"}  # fmt: skip
EPOCH = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SynthConfig:
    n_users: int = 200
    """Users generated."""
    users_per_home: int = 3
    """Users per home."""
    days: int = 3
    """Days of logs generated."""
    p_bad: float = 0.3
    """P(a command is said in a form that fails)."""
    p_wrong: float = 0.25
    """P(a bad one is understood as the wrong action: success status, then barged in on)."""
    p_rephrase: float = 0.7
    """P(after a failure: rephrase into the good form within seconds)."""
    p_repeat: float = 0.1
    """P(after a failure: say the same thing again first)."""
    max_devices: int = len(_ROOMS) * len(_THINGS)
    """Devices per home at most (rooms x things)."""


def commands(max_devices: int) -> pl.DataFrame:
    """The command space: per device an on/off command, its good form and two forms that fail."""
    rows = []
    for i in range(min(max_devices, len(_ROOMS) * len(_THINGS))):
        room, thing = _ROOMS[i % len(_ROOMS)], _THINGS[(i // len(_ROOMS)) % len(_THINGS)]
        for verb, intent in (("on", "HassTurnOn"), ("off", "HassTurnOff")):
            rows.append(
                {
                    "intent": intent,
                    "entity": f"{'light' if thing in ('light', 'lamp') else 'switch'}.{room.replace(' ', '_')}_{thing}",
                    "good": f"turn {verb} the {room} {thing}",
                    "bad_asr": f"turn {verb} the {room} {_MISHEARD[thing]}",
                    "bad_phrase": f"{room} {thing} {verb} please",
                }
            )
    return pl.DataFrame(rows)


def generate(n_turns: int, *, seed: int = 0, config: SynthConfig | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """About ``n_turns`` turns (Turn Arrow schema) and their truth (turn_id, defect, is_rephrase_of)."""
    c = config or SynthConfig()
    rng = np.random.default_rng(seed)
    cmds = commands(c.max_devices)
    mean_len = 1 + c.p_bad * (c.p_rephrase + 2 * c.p_repeat)
    n_ep = max(1, int(n_turns / mean_len))
    user = rng.integers(0, c.n_users, n_ep)
    cmd = rng.integers(0, cmds.height, n_ep)
    bad = rng.random(n_ep) < c.p_bad
    wrong = bad & (rng.random(n_ep) < c.p_wrong)
    fate = rng.random(n_ep)
    repeat = bad & (fate < c.p_repeat)
    rephrase = bad & (fate < c.p_repeat + c.p_rephrase)
    bad_kind = rng.integers(0, 2, n_ep)
    length = 1 + rephrase.astype(np.int64) + repeat.astype(np.int64)
    start = np.sort(rng.random(n_ep)) * c.days * 86_400.0

    ep = np.repeat(np.arange(n_ep), length)
    pos = np.arange(ep.size) - np.repeat(np.cumsum(length) - length, length)
    last = pos == length[ep] - 1
    good_turn = ~bad[ep] | (last & rephrase[ep])
    elapsed = np.cumsum(rng.uniform(2.0, 9.0, ep.size) * (pos > 0))
    ts_s = start[ep] + elapsed - elapsed[(np.cumsum(length) - length)[ep]]
    is_wrong = ~good_turn & wrong[ep]
    n = ep.size
    home = user[ep] // c.users_per_home
    frame = pl.DataFrame(
        {
            "i": np.arange(n),
            "ep": ep,
            "user": user[ep],
            "home": home,
            "cmd": cmd[ep],
            "pos": pos,
            "good_turn": good_turn,
            "is_wrong": is_wrong,
            "asr_bad": bad_kind[ep] == 0,
            "ts": pl.Series((EPOCH.timestamp() + ts_s) * 1e6).cast(pl.Int64).cast(pl.Datetime("us", "UTC")),
        }
    ).join(cmds.with_row_index("cmd", offset=0).with_columns(pl.col("cmd").cast(pl.Int64)), on="cmd", how="left")
    good, wrong_turn, asr_bad = pl.col("good_turn"), pl.col("is_wrong"), pl.col("asr_bad")
    success = good | wrong_turn
    opposite = pl.when(pl.col("intent") == "HassTurnOn").then(pl.lit("HassTurnOff")).otherwise(pl.lit("HassTurnOn"))
    entity = pl.col("entity")
    turns = frame.sort("i").select(
        turn_id=pl.format("t{}", "i"),
        dialogue_id=pl.format("d{}", "ep"),
        session_id=pl.format("s{}", "ep"),
        user_id=pl.format("u{}", "user"),
        home_id=pl.format("h{}", "home"),
        device_id=pl.format("speaker-{}", "home"),
        device_type=pl.lit("speaker"),
        ts=pl.col("ts"),
        area=pl.lit("kitchen"),
        asr_text=pl.when(good).then("good").when(asr_bad).then("bad_asr").otherwise("bad_phrase"),
        asr_confidence=pl.when(good).then(0.95).otherwise(0.7),
        rewritten_text=pl.lit(None, dtype=pl.String),
        rewrite_source=pl.lit("none"),
        nlu_intent=pl.when(good).then("intent").when(wrong_turn).then(opposite).otherwise(pl.lit(None, pl.String)),
        nlu_slots=pl.lit("{}"),
        nlu_confidence=pl.when(good).then(0.9).otherwise(0.4),
        resolved_entities=pl.when(success)
        .then(pl.format('{{"domain":"{}","name":"{}"}}', entity.str.split(".").list.first(), entity))
        .otherwise(pl.lit("{}")),
        result_status=pl.when(success)
        .then(pl.lit("success"))
        .when(asr_bad)
        .then(pl.lit("no_entity"))
        .otherwise(pl.lit("no_match")),
        response_text=pl.lit(""),
        barge_in=wrong_turn,
        response_latency_ms=pl.lit(250.0),
        device_state_snapshot=pl.lit("{}"),
        explicit_feedback=pl.lit(None, dtype=pl.String),
        trace=pl.lit("{}"),
        schema_version=pl.lit(SCHEMA_VERSION, dtype=pl.Int32),
    )
    truth = turns.select(
        "turn_id",
        defect=~pl.Series(good_turn),
        is_rephrase_of=pl.when(pl.Series(pos > 0)).then(pl.col("turn_id").shift(1)),
    )
    return turns.select(ARROW_SCHEMAS[Turn].names), truth
