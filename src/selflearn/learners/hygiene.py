"""Rule hygiene: a rewrite may fix how a request was said, never what it acts on or where.

A repair chain links whatever a person said next, so mining can propose rules that swap the device ("open the
drapes" -> "open the garage door"), the device kind behind the words ("set the garage brightness to 20" -> "open the
garage door") or the room, or that turn a bare fragment into some request ("start" -> "make coffee"). Such a rule
fires in every home that says those words; when it is wrong it does something nobody asked for. The guard reads
both sides' words (area names and aliases of the homes plus common rooms; device nouns and verbs of a shipped
lexicon and the homes' device names; pattern placeholders) and, where known, the NLU readings (intent family,
``domain`` slot): the device kinds named on both sides must overlap, the areas named must be the same, and a source
needs a content word. It also marks targets that act on security-sensitive devices (locks, alarms, covers and
garage doors, climate), which the miner holds to stronger evidence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from selflearn.home import Home
from selflearn.runtime.patterns import DEVICE_KINDS, PLACEHOLDER
from selflearn.text import normalize

# Words and phrases that name a kind of device (nouns, and verbs only one kind of device has). Kinds are the home
# domains, except that a garage door (a cover in Home Assistant) and an alarm panel are kinds of their own: opening
# the drapes and opening the garage door are not the same request.
DEVICE_WORDS: dict[str, tuple[str, ...]] = {
    "light": (
        "light", "lights", "lamp", "lamps", "bulb", "bulbs", "chandelier", "sconce", "sconces", "pendants",
        "brightness", "dim", "dimmer", "lamplight",
    ),
    "cover": ("curtain", "curtains", "drapes", "blind", "blinds", "shade", "shades", "shutters", "awning"),
    "garage_door": ("garage door", "garage doors"),
    "lock": ("lock", "locks", "unlock", "deadbolt", "door", "doors", "front door", "back door"),
    "alarm": ("disarm", "arm", "security", "alarm system", "alarm panel", "burglar alarm"),
    "climate": (
        "thermostat", "heating", "heat", "temperature", "ac", "air conditioning", "air conditioner", "warmer",
        "cooler",
    ),
    "fan": ("fan", "fans", "ceiling fan"),
    "media_player": ("tv", "television", "telly", "music", "song", "radio", "volume", "podcast", "channel"),
    "vacuum": ("vacuum", "hoover", "roomba", "robot vacuum"),
    "coffee_maker": ("coffee", "espresso", "coffee maker", "brewing", "brew"),
    "oven": ("oven", "stove", "preheat"),
    "valve": ("valve", "sprinkler", "sprinklers", "water main"),
}  # fmt: skip
SENSITIVE_KINDS = frozenset({"lock", "alarm", "cover", "garage_door", "climate"})
# Intent families whose device kind the intent itself names (the rest act on whatever their slots name).
INTENT_KINDS = (
    ("light", "Light"),
    ("climate", "Climate|Temperature"),
    ("media_player", "Media|Volume"),
    ("vacuum", "Vacuum"),
    ("lock", "Lock"),
    ("cover", "Cover"),
    ("valve", "Valve"),
    ("fan", "Fan"),
)
ROOMS = (
    "kitchen", "living room", "lounge", "bedroom", "master bedroom", "office", "study", "dining room", "kids room",
    "nursery", "hallway", "hall", "garage", "basement", "bathroom", "porch", "patio", "den", "attic", "laundry room",
)  # fmt: skip
# Words that carry no request of their own: a source made only of these is a fragment ("start", "on", "turn it on").
_GENERIC_WORDS = """a an the it its this that these those them me my i i'm you your we our us he she they his her to
of in on off at for from with by up down out over into please now just can could would will do does did is are was be
been what what's how and or but some all any so yes no ok okay hey hi again there here then too very more less bit
little start stop turn set make open close play pause resume go get put switch run begin end cancel show tell give let
take keep change try want need like"""
GENERIC = frozenset(_GENERIC_WORDS.split())


@dataclass(frozen=True)
class Reading:
    """What one side of a rule names: device kinds, areas (canonical names), and whether it has a content word."""

    kinds: frozenset[str]
    """Device kinds named by words, placeholders, the intent family or the domain slot."""
    areas: frozenset[str]
    """Canonical area names (aliases mapped), or area placeholders."""
    content: bool
    """Has a word beyond generic verbs and function words (placeholders count, numbers do not)."""


class Hygiene:
    """``Hygiene.for_homes(homes).violation(source, target, ...)``: why a rule must not be published, or None."""

    def __init__(self, device_names: dict[str, str], area_names: dict[str, str]):
        self.device_names = device_names
        self.area_names = area_names
        self._devices = _alternation(device_names)
        self._areas = _alternation(area_names)

    @classmethod
    def for_homes(cls, homes: Sequence[Home] = ()) -> Hygiene:
        """The shipped lexicon plus the homes' own device names (as their domain) and area names and aliases."""
        devices: dict[str, str] = {}
        areas: dict[str, str] = {normalize(r): normalize(r) for r in ROOMS}
        for home in homes:
            for area in home.areas:
                for name in (area.name, *area.aliases):
                    areas[normalize(name)] = normalize(area.name)
            for device in home.devices:
                for name in device.names:
                    devices.setdefault(normalize(name), device.domain)
        for kind, words in DEVICE_WORDS.items():
            devices.update(dict.fromkeys(words, kind))  # the lexicon wins: a garage door is not just a cover
        # Shipped alias lists map "lounge" to "living room" when a home says so; elsewhere each room is itself.
        return cls({k: v for k, v in devices.items() if k}, {k: v for k, v in areas.items() if k})

    def read(self, form: str, intent: str | None = None, slots: str | None = None) -> Reading:
        """The kinds, areas and content of a normalised form (and its NLU reading, when there is one)."""
        kinds = {self.device_names[m] for m in self._devices.findall(form)} if self._devices else set()
        areas = {self.area_names[m] for m in self._areas.findall(form)} if self._areas else set()
        for match in PLACEHOLDER.finditer(form):
            if match.group(1) in DEVICE_KINDS:
                kinds.add(match.group(1))
            elif match.group(1) == "area":
                areas.add(match.group(0))
        if intent:
            kinds |= {kind for kind, pattern in INTENT_KINDS if re.search(pattern, intent)}
        domain = _slot(slots, "domain")
        if domain:
            kinds.add(domain)
        words = [w for w in PLACEHOLDER.sub(lambda m: "" if m.group(1) == "number" else "content", form).split()]
        return Reading(frozenset(kinds), frozenset(areas), any(w not in GENERIC and not _is_number(w) for w in words))

    def violation(
        self,
        source: str,
        target: str,
        source_intent: str | None = None,
        target_intent: str | None = None,
        source_slots: str | None = None,
        target_slots: str | None = None,
    ) -> str | None:
        """Why the rule breaks hygiene ("fragment", "device" or "area"), or None."""
        said, sent = self.read(source, source_intent, source_slots), self.read(target, target_intent, target_slots)
        if not said.content:
            return "fragment"
        if said.kinds and sent.kinds and not said.kinds & sent.kinds:
            return "device"
        if said.areas and said.areas != sent.areas:
            return "area"
        return None

    def sensitive(self, target: str, intent: str | None = None, slots: str | None = None) -> bool:
        """Does the target act on a lock, an alarm, a cover or garage door, or the climate (questions do not)?"""
        asks = intent is not None and "Get" in intent
        return not asks and bool(self.read(target, intent, slots).kinds & SENSITIVE_KINDS)


def violations(hygiene: Hygiene, rules: Iterable[dict[str, str | None]]) -> list[str | None]:
    """``Hygiene.violation`` per rule row (``source``, ``target``, intents and, if present, slots)."""
    return [
        hygiene.violation(
            str(r["source"]),
            str(r["target"]),
            r.get("source_intent"),
            r.get("target_intent"),
            r.get("source_slots"),
            r.get("target_slots"),
        )
        for r in rules
    ]


def _alternation(names: dict[str, str]) -> re.Pattern[str] | None:
    """One regex for the names, longest first, on word boundaries."""
    if not names:
        return None
    ordered = sorted(names, key=lambda n: (-len(n), n))
    return re.compile(rf"(?<![\w'])(?:{'|'.join(re.escape(n) for n in ordered)})(?![\w'])")


def _slot(slots: str | None, name: str) -> str | None:
    """A slot value from a JSON slots string (pattern forms carry slot names only: None)."""
    if not slots or not slots.startswith("{"):
        return None
    value = json.loads(slots).get(name)
    return str(value) if isinstance(value, str) and value in DEVICE_KINDS else None


def _is_number(word: str) -> bool:
    return word.replace(".", "", 1).isdigit()
