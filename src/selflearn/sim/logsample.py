"""Seeded, realistic-looking interaction logs (Turn + Gold + Feedback) and a corruption injector for them.

Used by the ``ingest`` eval suite, ``selflearn bench ingest`` and the interim demo: they need lots of plausible rows
fast and rows broken in every way real log pipelines break them. The turns follow the shipped homes' people and
devices: dialogues of one to three turns, ASR noise, failures followed by rephrases, barge-ins, abandonments and the
occasional answer to "Did I get that right?". This is not the simulator (``selflearn.sim``), which drives the real
runtime; nothing here learns from or is evaluated on these rows except the store.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

import pyarrow as pa
import pyarrow.parquet as pq

from selflearn.home import Device, Home, Person, shipped_homes
from selflearn.schema import (
    ARROW_SCHEMAS,
    MAX_TEXT_CHARS,
    Feedback,
    Gold,
    ResultStatus,
    Turn,
    to_arrow,
)

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)

# (intent, utterance template, domains it applies to; empty = no device)
_REQUESTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("HassTurnOn", "turn on the {name}", ("light", "switch", "fan", "media_player", "coffee_maker", "oven")),
    ("HassTurnOff", "turn off the {name}", ("light", "switch", "fan", "media_player", "oven")),
    ("HassLightSet", "set the {name} to {pct} percent", ("light",)),
    ("HassOpenCover", "open the {name}", ("cover",)),
    ("HassCloseCover", "close the {name}", ("cover",)),
    ("HassLockDevice", "lock the {name}", ("lock",)),
    ("HassClimateSetTemperature", "set the {name} to {deg} degrees", ("climate",)),
    ("HassVacuumStart", "start the {name}", ("vacuum",)),
    ("HassGetWeather", "what is the weather", ()),
    ("HassGetWeather", "will it rain tomorrow", ()),
    ("PlayMusic", "play some {genre}", ()),
    ("HassStartTimer", "set a timer for {minutes} minutes", ()),
    ("SportsScore", "how did the {team} do", ()),
)
# Word-level confusions a speech recogniser makes on these requests.
_ASR_CONFUSIONS = {
    "light": "like",
    "lights": "likes",
    "lamp": "lump",
    "fan": "fun",
    "turn": "tern",
    "weather": "whether",
    "timer": "time",
    "blinds": "blends",
    "lock": "look",
    "rain": "reign",
    "oven": "of in",
    "play": "pray",
}
_REPHRASE_PREFIX = ("i said ", "no, ", "please ", "can you ", "")

CorruptionKind = Literal[
    "bad_json",
    "not_object",
    "wrong_type",
    "missing_field",
    "negative_latency",
    "future_ts",
    "oversize_text",
    "invalid_utf8",
    "unknown_enum",
    "bad_json_field",
    "duplicate",
]
JSONL_CORRUPTIONS: tuple[CorruptionKind, ...] = get_args(CorruptionKind)  # JSONL can carry every kind
PARQUET_CORRUPTIONS: tuple[CorruptionKind, ...] = (
    "missing_field",
    "negative_latency",
    "future_ts",
    "oversize_text",
    "unknown_enum",
    "bad_json_field",
    "duplicate",
)


@dataclass
class SampleLog:
    turns: list[Turn] = field(default_factory=list)
    """The sample's turns."""
    gold: list[Gold] = field(default_factory=list)
    """The simulator's truth behind them (evaluation only)."""
    feedback: list[Feedback] = field(default_factory=list)
    """Explicit feedback given on them."""


def _utterance(rng: random.Random, home: Home, habits: dict[str, str]) -> tuple[str, str, Device | None]:
    intent, template, domains = rng.choice(_REQUESTS)
    device = None
    if domains:
        candidates = [d for d in home.devices if d.domain in domains]
        if not candidates:
            return "what is the weather", "HassGetWeather", None
        device = rng.choice(candidates)
    text = template.format(
        name=rng.choice(device.names).lower() if device else "",
        pct=rng.choice((10, 20, 30, 50, 70, 100)),
        deg=rng.randint(17, 24),
        genre=habits.get("music_genre", rng.choice(("jazz", "rock", "pop"))),
        minutes=rng.choice((3, 5, 10, 15, 20)),
        team=habits.get("team", "warriors").lower(),
    )
    return text, intent, device


def _asr(rng: random.Random, text: str, noisy: bool) -> str:
    if not noisy:
        return text
    words = text.split()
    hits = [i for i, w in enumerate(words) if w in _ASR_CONFUSIONS]
    if hits:
        i = rng.choice(hits)
        words[i] = _ASR_CONFUSIONS[words[i]]
    else:
        words.insert(rng.randrange(len(words) + 1), rng.choice(("uh", "the", "um")))
    return " ".join(words)


def generate(n_turns: int, *, seed: int = 0, homes: Sequence[Home] | None = None) -> SampleLog:
    """About ``n_turns`` turns (exactly that many) with their gold and feedback, deterministic for a seed."""
    rng = random.Random(seed)
    homes = list(homes) if homes is not None else shipped_homes()
    people: list[tuple[Home, Person | None]] = [(h, p) for h in homes for p in h.people]
    people = people or [(h, None) for h in homes]
    log = SampleLog()
    ts = START
    dialogue = 0
    while len(log.turns) < n_turns:
        home, person = rng.choice(people)
        user_id = person.id if person else f"{home.id}.guest"
        endpoints = [e for e in home.endpoints if person is None or e.id in person.endpoints] or home.endpoints
        endpoint = rng.choice(endpoints)
        habits = dict(person.habits) if person else {}
        ts += timedelta(seconds=rng.expovariate(1 / 900))
        session = f"s{seed}-{dialogue // 3}"
        dialogue += 1
        true_text, intent, device = _utterance(rng, home, habits)
        goal = f"g{seed}-{dialogue}"
        previous: str | None = None
        for attempt in range(3):
            if len(log.turns) >= n_turns:
                break
            noisy = rng.random() < 0.18
            asr_text = _asr(rng, true_text if attempt == 0 else rng.choice(_REPHRASE_PREFIX) + true_text, noisy)
            understood = not noisy or rng.random() < 0.3
            status: ResultStatus = "success" if understood else rng.choice(("no_match", "no_entity", "failed"))
            failure = "correct" if understood else ("asr" if rng.random() < 0.7 else "nlu")
            turn_id = f"t{seed}-{len(log.turns):08d}"
            slots = {"name": device.name, "area": device.area} if device else {}
            latency = round(rng.lognormvariate(6.2, 0.4), 1)
            barge = not understood and rng.random() < 0.35
            log.turns.append(
                Turn(
                    turn_id=turn_id,
                    dialogue_id=f"d{seed}-{dialogue}",
                    session_id=session,
                    user_id=user_id,
                    home_id=home.id,
                    device_id=endpoint.id,
                    device_type=endpoint.type,
                    ts=ts,
                    area=endpoint.area,
                    asr_text=asr_text,
                    asr_confidence=round(rng.uniform(0.35, 0.75) if noisy else rng.uniform(0.8, 0.99), 3),
                    nlu_intent=intent if understood else None,
                    nlu_slots=slots if understood else {},
                    nlu_confidence=round(rng.uniform(0.7, 0.99) if understood else rng.uniform(0.0, 0.4), 3),
                    resolved_entities={"device_id": device.id} if device and understood else {},
                    result_status=status,
                    response_text="Done." if understood else "Sorry, I didn't get that.",
                    barge_in=barge,
                    response_latency_ms=latency,
                    device_state_snapshot={device.id: device.state} if device else {},
                    trace={
                        "nlu": {"top": [[intent if understood else "unknown", round(rng.random(), 3)]]},
                        "timings_ms": {"asr": round(latency * 0.4, 1), "nlu": round(latency * 0.2, 1)},
                    },
                )
            )
            log.gold.append(
                Gold(
                    turn_id=turn_id,
                    true_text=true_text,
                    true_intent=intent,
                    true_slots=slots,
                    failure_point=failure,
                    goal_id=goal,
                    goal_success=understood,
                    is_rephrase_of=previous,
                    annotator_labels={"single": understood if rng.random() < 0.9 else not understood},
                )
            )
            if understood and rng.random() < 0.05:
                log.feedback.append(
                    Feedback(
                        feedback_id=f"f-{turn_id}",
                        turn_id=turn_id,
                        user_id=user_id,
                        ts=ts + timedelta(seconds=4),
                        kind="yes",
                        text="yes",
                    )
                )
            previous = turn_id
            ts += timedelta(seconds=rng.uniform(3, 12))
            if understood or rng.random() < 0.3:  # success, or the user gives up (abandonment)
                break
    return log


def write_log(log: SampleLog, folder: Path, *, fmt: Literal["jsonl", "parquet"] = "jsonl") -> dict[str, Path]:
    """Write ``turns.*``, ``gold.*`` and ``feedback.*`` into ``folder`` (their names declare their kinds)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, records, model in (
        ("turns", log.turns, Turn),
        ("gold", log.gold, Gold),
        ("feedback", log.feedback, Feedback),
    ):
        path = folder / f"{name}.{fmt}"
        if fmt == "jsonl":
            path.write_bytes(b"".join(r.model_dump_json().encode() + b"\n" for r in records))
        else:
            pq.write_table(to_arrow(records, model), path, compression="zstd")
        out[name] = path
    return out


# ---------------------------------------------------------------- corruptions


def _break_row(rng: random.Random, row: dict[str, Any], kind: CorruptionKind) -> dict[str, Any]:
    row = dict(row)
    if kind == "wrong_type":
        row[rng.choice(("asr_confidence", "barge_in", "response_latency_ms"))] = rng.choice(("high", [1, 2], {"x": 1}))
    elif kind == "missing_field":
        row.pop(rng.choice(("user_id", "turn_id", "asr_text", "result_status", "ts")))
    elif kind == "negative_latency":
        row["response_latency_ms"] = -round(rng.uniform(1, 500), 1)
    elif kind == "future_ts":
        row["ts"] = "3000-01-01T00:00:00+00:00"
    elif kind == "oversize_text":
        row["asr_text"] = "turn on the light " * (MAX_TEXT_CHARS // 18 + 1)
    elif kind == "unknown_enum":
        row[rng.choice(("result_status", "device_type"))] = "exploded"
    elif kind == "bad_json_field":
        row["nlu_slots"] = '{"name": "kitchen'
    return row


def corrupt_jsonl(
    lines: list[bytes], *, rate: float, seed: int, kinds: Sequence[CorruptionKind] = JSONL_CORRUPTIONS
) -> tuple[list[bytes], Counter[str]]:
    """Break about ``rate`` of the lines (Turn JSONL), cycling through ``kinds``; returns lines and counts per kind.

    Duplicates are appended copies of valid lines (they must be stored once and counted as duplicates); every other
    kind replaces the line, so the count of non-duplicate kinds is exactly what ingest must quarantine.
    """
    rng = random.Random(seed)
    out = list(lines)
    counts: Counter[str] = Counter()
    n_bad = max(len(kinds), round(len(lines) * rate))
    targets = rng.sample(range(len(lines)), min(n_bad, len(lines)))
    for i, index in enumerate(targets):
        kind = kinds[i % len(kinds)]
        counts[kind] += 1
        if kind == "duplicate":
            out.append(lines[index])
            continue
        if kind == "bad_json":
            out[index] = lines[index][: rng.randint(1, len(lines[index]) - 2)]
        elif kind == "not_object":
            out[index] = b'["turn on the light", 0.9]'
        elif kind == "invalid_utf8":
            text = lines[index]
            cut = text.index(b'"asr_text":"') + len(b'"asr_text":"') if b'"asr_text":"' in text else 1
            out[index] = text[:cut] + b"\xff\xfe" + text[cut:]
        else:
            out[index] = json.dumps(_break_row(rng, json.loads(lines[index]), kind)).encode()
    return out, counts


def corrupt_turn_table(
    table: pa.Table, *, rate: float, seed: int, kinds: Sequence[CorruptionKind] = PARQUET_CORRUPTIONS
) -> tuple[pa.Table, Counter[str]]:
    """Break about ``rate`` of a Turn table's rows in ways a Parquet file can carry (its types stay the schema's).

    ``missing_field`` becomes a null in a required column; ``duplicate`` appends copies of valid rows.
    """
    rng = random.Random(seed)
    rows = table.to_pylist()
    counts: Counter[str] = Counter()
    n_bad = max(len(kinds), round(len(rows) * rate))
    targets = rng.sample(range(len(rows)), min(n_bad, len(rows)))
    extra = []
    for i, index in enumerate(targets):
        kind = kinds[i % len(kinds)]
        counts[kind] += 1
        if kind == "duplicate":
            extra.append(rows[index])
        elif kind == "missing_field":
            rows[index] = {**rows[index], rng.choice(("user_id", "asr_text", "result_status", "ts")): None}
        elif kind == "future_ts":
            rows[index] = {**rows[index], "ts": datetime(3000, 1, 1, tzinfo=UTC)}
        else:
            rows[index] = _break_row(rng, rows[index], kind)
    schema = pa.schema([pa.field(f.name, f.type, True) for f in ARROW_SCHEMAS[Turn]])
    return pa.Table.from_pylist(rows + extra, schema=schema), counts


def write_corrupted(
    log: SampleLog, folder: Path, *, rate: float, seed: int
) -> tuple[dict[str, Path], Counter[str], Counter[str]]:
    """The log as JSONL and Parquet turn files with corruptions injected; returns paths and per-format counts."""
    folder.mkdir(parents=True, exist_ok=True)
    half = len(log.turns) // 2
    lines = [t.model_dump_json().encode() for t in log.turns[:half]]
    bad_lines, jsonl_counts = corrupt_jsonl(lines, rate=rate, seed=seed)
    jsonl_path = folder / "turns_part1.jsonl"
    jsonl_path.write_bytes(b"\n".join(bad_lines) + b"\n")
    table, parquet_counts = corrupt_turn_table(to_arrow(log.turns[half:], Turn), rate=rate, seed=seed + 1)
    parquet_path = folder / "turns_part2.parquet"
    pq.write_table(table, parquet_path, compression="zstd")
    paths = {"turns_jsonl": jsonl_path, "turns_parquet": parquet_path}
    for name, records, model in (("gold", log.gold, Gold), ("feedback", log.feedback, Feedback)):
        path = folder / f"{name}.parquet"
        pq.write_table(to_arrow(records, model), path, compression="zstd")
        paths[name] = path
    return paths, jsonl_counts, parquet_counts
