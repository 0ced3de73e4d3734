"""What a home's runtime is known to carry out from day 0: its canonical commands and indirect requests, dry-run."""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING

import yaml
from hassil.parse_expression import parse_sentence
from hassil.sample import sample_sentence

from selflearn import paths
from selflearn.home import Home
from selflearn.runtime.nlu import compiled, home_slot_lists
from selflearn.runtime.ranker import home_entities
from selflearn.runtime.runtime import Runtime
from selflearn.text import normalize

if TYPE_CHECKING:
    pass


SAMPLE_SPAN = 24  # renderings per template that ``canonical_commands`` picks from


INDIRECT = paths.PACKAGE_DATA / "retrieval" / "indirect.yaml"


_SLOT = re.compile(r"\{(\w+)\}")


_RANGE = re.compile(r"\{\w+\}")  # an unexpanded hassil range slot


@dataclass(frozen=True)
class Entry:
    """One utterance that works in a home, with the reading the runtime gave it."""

    text: str
    """Normalised utterance that works (what a request is rewritten to)."""
    match: str
    """What a request is compared with: ``text``, or a failing wording a person repaired into ``text``."""
    intent: str
    """The runtime's intent for it."""
    slots: str
    """Its slots as sorted JSON (readings compare by intent + slots)."""
    names: tuple[str, ...]
    """The home's device/area/city names it says."""
    source: str
    """Origin: "canonical" (templates), "log" (worked or was repaired in this home) or "global" (population)."""
    acts: bool
    """The dry run changed a device (a wrong pick of it is a false action, not a wrong answer)."""


def canonical_commands(home: Home, per_template: int, *, seed: int = 0) -> list[str]:
    """The NLU's templates rendered with this home's names: up to ``per_template`` seeded picks among the first
    ``SAMPLE_SPAN`` renderings of every template without a free-text slot (hassil ``sample_sentence``; taking the
    first renderings per intent would give one template's name combinations), normalised, deduplicated. Number
    ranges are not expanded (hassil enumerates every value: 10x the time) but filled with a seeded number."""
    intents = compiled()
    slot_lists = {**intents.slot_lists, **home_slot_lists(home)}
    rng = random.Random(seed)
    out: list[str] = []
    for intent in intents.intents.values():
        for data in intent.data:
            rules = {**intents.expansion_rules, **data.expansion_rules}
            for sentence in data.sentences:
                if any(name in data.wildcard_list_names for name in sentence.list_names(rules)):
                    continue
                rendered = sample_sentence(sentence, slot_lists, rules, language="en", expand_ranges=False)
                texts = list(itertools.islice(rendered, SAMPLE_SPAN))
                out += rng.sample(texts, min(per_template, len(texts)))
    filled = (_RANGE.sub(lambda _: str(rng.randint(2, 60)), text) for text in out)
    return list(dict.fromkeys(n for text in filled if (n := normalize(text))))


@lru_cache(maxsize=1)
def _indirect_pairs() -> tuple[tuple[str, str], ...]:
    data = yaml.safe_load(INDIRECT.read_text(encoding="utf-8"))
    return tuple((str(p["say"]), str(p["means"])) for p in data["pairs"])


def indirect_commands(home: Home, per_pair: int, *, seed: int = 0) -> list[tuple[str, str]]:
    """(match, text) pairs from ``data/retrieval/indirect.yaml``: how people ask for what the templates do not
    parse, with the home's area and device names filled in; up to ``per_pair`` seeded renderings of each pair and
    name, normalised. A pair naming a kind of device the home lacks gives nothing."""
    names: dict[str, list[str]] = {"area": [a.name for a in home.areas]}
    for device in home.devices:
        names.setdefault(device.domain, []).append(device.name)
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    for say, means in _indirect_pairs():
        slots = sorted(set(_SLOT.findall(say + " " + means)))
        if any(slot not in names for slot in slots):
            continue
        fills = [dict(zip(slots, values, strict=True)) for values in itertools.product(*(names[s] for s in slots))]
        for fill in fills:
            texts = list(sample_sentence(parse_sentence(_fill(say, fill)), {}, {}, language="en"))
            text = normalize(_fill(means, fill))
            out += [(n, text) for t in rng.sample(texts, min(per_pair, len(texts))) if (n := normalize(t))]
    return list(dict.fromkeys(out))


def _fill(template: str, names: dict[str, str]) -> str:
    return _SLOT.sub(lambda m: names[m.group(1)].lower(), template)


def dry_run(
    home: Home, pairs: Iterable[tuple[str, str]], source: str, per_reading: int | None = None, *, fresh: bool = False
) -> list[Entry]:
    """Entries for the (match, text) pairs whose text a throwaway runtime of this home executes successfully (with
    the reading it gave it), at most ``per_reading`` per reading; ``fresh``: each pair on its own runtime (the
    home's configured device states), so an entry does not depend on the pairs before it. Only template matches
    count (not the loose device-command fallback). Renderings that work but mean nothing are dropped: a free-text
    slot filled with one of the home's names ("what's the weather like for the bedroom lights"), a device named with
    another room ("turn the living room lights in the kitchen off")."""
    runtime = Runtime(home)
    endpoint = home.endpoints[0].id
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    names = home_entities(home, "")
    ids = {d.id for d in home.devices} | {a.id for a in home.areas}
    rooms = {d.id: d.area for d in home.devices}
    kept: Counter[str] = Counter()
    out = []
    for match, text in pairs:
        runtime = Runtime(home) if fresh else runtime
        interpretation = runtime.interpret(text, user_id="retrieval", endpoint_id=endpoint, now=now)
        turn = interpretation.turn
        if turn.result_status != "success" or not turn.nlu_intent or interpretation.stages["nlu"]["loose"]:
            continue
        values = [f" {normalize(v)} " for v in turn.nlu_slots.values() if isinstance(v, str) and v not in ids]
        slots = json.dumps(turn.nlu_slots, sort_keys=True)
        key = f"{turn.nlu_intent}|{slots}"
        if any(f" {n} " in v for v in values for n in names) or (per_reading is not None and kept[key] >= per_reading):
            continue
        device, area = turn.nlu_slots.get("name"), turn.nlu_slots.get("area")
        if area is not None and device in rooms and rooms[device] != area:
            continue
        kept[key] += 1
        said = tuple(n for n in names if mentions(text, n))
        acts = interpretation.status == "success" and bool(interpretation.stages["execute"].get("changed"))
        out.append(Entry(text, match, turn.nlu_intent, slots, said, source, acts))
    return out


def mentions(text: str, name: str) -> bool:
    return f" {name} " in f" {text} "
