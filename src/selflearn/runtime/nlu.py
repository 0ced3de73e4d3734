"""NLU: hassil over home-assistant-intents' English templates plus selflearn's own (media, weather by city, appliance
programs, state queries, restaurants, sports), returning ranked hypotheses with a confidence.

Speed matters (the runtime must stay within 1.3x of plain hassil ``recognize``), so the templates are compiled and
indexed (``prefilter.py``: hassil only sees templates that can match) once per process and slot lists once per
home. Enumerating *every* hassil match is 10-50x slower than the first match, so the NLU takes hassil's first match
and then enumerates all matches only inside the small group of intents known to compete with it (e.g. HA's media
search vs. selflearn's typed ``PlayMedia``). An utterance nothing matches gives an empty list: the runtime reports
``no_match`` rather than guessing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import yaml
from hassil import Intents, RecognizeResult, SlotList, TextSlotList, recognize, recognize_all
from hassil.models import MatchEntity
from home_assistant_intents import get_intents

from selflearn import paths
from selflearn.home import Device, Home
from selflearn.runtime.prefilter import Prefilter
from selflearn.text import normalize

LANGUAGE = "en"
TEMPLATES_DIR = paths.PACKAGE_DATA / "templates"

OWN_INTENTS = ("PlayMedia", "WeatherIn", "StartProgram", "GetDeviceState", "FindRestaurant", "WatchGame")
# Intents whose templates overlap: when hassil's first match is one of them, every match inside the group is
# enumerated so that context can choose between them.
COMPETING: tuple[frozenset[str], ...] = (
    frozenset({"HassClimateGetTemperature", "GetDeviceState"}),
    frozenset({"HassMediaSearchAndPlay", "PlayMedia"}),
    frozenset({"HassGetWeather", "WeatherIn"}),
    frozenset({"StartProgram"}),
    frozenset({"WatchGame"}),
    frozenset({"FindRestaurant"}),
)
LOOSE_LIMIT = 60
MEMO_SIZE = 20_000  # remembered parses per home (a few MB)
# Intents whose unknown ``{name}`` is worth resolving fuzzily (device commands and questions); a small group keeps
# the fallback cheap.
LOOSE_INTENTS = frozenset({"HassGetState", "HassLightSet", "GetDeviceState"})
_SPACES = re.compile(r"\s+")
_STUTTER = re.compile(r"\b(the|a|an|to|on|off|of|in|my|me|is|it)( \1\b)+", re.IGNORECASE)


@dataclass(frozen=True)
class Hypothesis:
    """One reading of the utterance: an intent, its slots (values as the NLU produced them), and a confidence."""

    intent: str
    """Intent name (HA's, e.g. HassTurnOn, or selflearn's)."""
    slots: dict[str, Any]
    """Slot name -> value as the NLU produced it."""
    score: float
    """Confidence of the reading (0..1)."""
    slot_text: dict[str, str] = field(default_factory=dict)
    """Slot name -> the words of the utterance that filled it."""
    from_context: tuple[str, ...] = ()
    """Slots filled from context, not said."""

    def to_json(self) -> dict[str, Any]:
        return {"intent": self.intent, "slots": self.slots, "score": round(self.score, 4)}


@cache
def template_dict() -> dict[str, Any]:
    """HA's English intents with selflearn's templates merged in (selflearn's sentences extend an HA intent of the
    same name, and add new intents)."""
    merged = get_intents(LANGUAGE)
    assert merged is not None
    merged = {**merged, "intents": dict(merged["intents"]), "lists": dict(merged["lists"])}
    for entry in sorted(TEMPLATES_DIR.glob("*.yaml")):
        own = yaml.safe_load(entry.read_text(encoding="utf-8"))
        for name, intent in own.get("intents", {}).items():
            if name in merged["intents"]:
                base = merged["intents"][name]
                merged["intents"][name] = {**base, "data": [*base["data"], *intent["data"]]}
            else:
                merged["intents"][name] = intent
        merged["lists"].update(own.get("lists", {}))
        merged["expansion_rules"] = {**merged["expansion_rules"], **own.get("expansion_rules", {})}
    return merged


@cache
def compiled() -> Intents:
    return Intents.from_dict(template_dict())


@cache
def compiled_group(names: frozenset[str]) -> Intents:
    full = template_dict()
    return Intents.from_dict({**full, "intents": {n: full["intents"][n] for n in sorted(names)}})


@cache
def prefilter(names: frozenset[str] | None = None) -> Prefilter:
    """The template index of the full set (``None``) or of a competing group, built once per process."""
    return Prefilter(compiled() if names is None else compiled_group(names))


def home_slot_lists(home: Home) -> dict[str, SlotList]:
    """``{area}``, ``{floor}`` and ``{name}`` from the home; names carry their domain so ``requires_context`` works."""
    areas = [(n, a.id) for a in home.areas for n in (a.name, *a.aliases)]
    floors = sorted({a.floor for a in home.areas if a.floor})
    names = [(n, d.id, _name_context(d)) for d in home.devices for n in d.names]
    return {
        "area": TextSlotList.from_tuples(areas, allow_template=False),
        "floor": TextSlotList.from_tuples([(f.replace("_", " "), f) for f in floors], allow_template=False),
        "name": TextSlotList.from_tuples(names, allow_template=False),
    }


READ_ONLY_DOMAINS = ("sensor", "binary_sensor")


def _name_context(device: Device) -> dict[str, Any]:
    """What HA's ``requires_context`` may ask of a name: its domain and, where known, its device class."""
    context: dict[str, Any] = {"domain": device.domain}
    if device.device_class:
        context["device_class"] = device.device_class
    return context


class NLU:
    """Ranked intent hypotheses for one home's vocabulary."""

    def __init__(
        self,
        slot_lists: Mapping[str, SlotList],
        *,
        device_names: Sequence[tuple[str, str, str | None, str]] = (),
        max_hypotheses: int = 8,
    ) -> None:
        self.intents = compiled()
        self.slot_lists: dict[str, SlotList] = dict(slot_lists)
        self.device_names = list(device_names)
        self.max_hypotheses = max_hypotheses
        self._memo: dict[tuple[str, ...], tuple[Hypothesis, ...]] = {}

    def memo(self, key: tuple[str, ...], compute: Callable[[], list[Hypothesis]]) -> list[Hypothesis]:
        """Parses are a pure function of the text and context for one home's lists, and people repeat themselves
        (hassil matching is most of a turn's cost), so results are remembered, oldest forgotten first."""
        hit = self._memo.get(key)
        if hit is None:
            if len(self._memo) >= MEMO_SIZE:
                del self._memo[next(iter(self._memo))]
            hit = self._memo[key] = tuple(compute())
        return list(hit)

    def clear_memo(self) -> None:
        """Forget remembered parses (benchmarks time the cold path)."""
        self._memo.clear()

    @classmethod
    def for_home(cls, home: Home, **kwargs: Any) -> NLU:
        names = [(f" {normalize(n)} ", d.id, d.area, d.domain) for d in home.devices for n in d.names]
        return cls(home_slot_lists(home), device_names=names, **kwargs)

    def first(self, text: str, *, area: str | None = None) -> RecognizeResult | None:
        """Plain hassil ``recognize`` with the same templates and lists: the baseline the runtime is compared to."""
        return recognize(text, self.intents, slot_lists=self.slot_lists, intent_context=_context(area), language="en")

    def parse(
        self, text: str, *, area: str | None = None, context: Mapping[str, Any] | None = None
    ) -> list[Hypothesis]:
        """All hypotheses, best first. ``area`` is the speaker's area (hassil's intent context), if known; other
        intent context (e.g. HA's test fixtures' ``domain``) can be given as ``context``."""
        key = ("parse", text, area or "", repr(sorted((context or {}).items())))
        return self.memo(key, lambda: self._parse(text, area=area, context=context))

    def _parse(self, text: str, *, area: str | None, context: Mapping[str, Any] | None) -> list[Hypothesis]:
        text = _SPACES.sub(" ", text).strip()
        if not text:
            return []
        context = {**(context or {}), **(_context(area) or {})} or None
        # hassil sees only the templates its own prefilter would keep (same results, less than half the cost)
        full = prefilter()
        top = recognize(text, full.prune(text), slot_lists=self.slot_lists, intent_context=context, language="en")
        if top is None:
            stuttered = _STUTTER.sub(r"\1", text)  # "start the the machine": a recognizer artefact, not a wording
            if stuttered == text:
                return []
            text = stuttered
            top = recognize(text, full.prune(text), slot_lists=self.slot_lists, intent_context=context, language="en")
            if top is None:
                return []
        results: list[RecognizeResult] = [top]
        group = next((g for g in COMPETING if top.intent.name in g), None)
        if group is not None:
            templates = prefilter(group).prune(text)
            results = list(
                recognize_all(text, templates, slot_lists=self.slot_lists, intent_context=context, language="en")
            ) or [top]
        ranked = rank(results, text)
        return (self._name_readings(ranked, text) + ranked)[: self.max_hypotheses]

    def _name_readings(self, ranked: list[Hypothesis], text: str) -> list[Hypothesis]:
        """hassil often reads "the kitchen light" as area + domain even when a device is called "Kitchen Light";
        like HA's ``recognize_best(best_slot_name="name")``, prefer the named device when its name was said. A
        read-only device of another domain (a binary sensor called "Light") is no reading of "turn off every light"."""
        top = ranked[0]
        if "name" in top.slots or "domain" not in top.slots:
            return []
        area = top.slots.get("area") if "area" in top.slot_text else None
        said = top.slots["domain"] if isinstance(top.slots["domain"], list) else [top.slots["domain"]]
        padded = f" {normalize(text)} "
        out = []
        for name, device_id, device_area, domain in self.device_names:
            if domain in READ_ONLY_DOMAINS and domain not in said:
                continue
            if name in padded and (area is None or device_area == area):
                slots = {k: v for k, v in top.slots.items() if k not in ("area", "domain")}
                out.append(Hypothesis(top.intent, {**slots, "name": device_id}, min(1.0, top.score + 0.02)))
        return out


def _context(area: str | None) -> dict[str, Any] | None:
    """hassil's intent context for the speaker's area (None, not {}, when unknown: hassil treats them alike)."""
    return {"area": area} if area else None


def rank(results: Iterable[RecognizeResult], text: str) -> list[Hypothesis]:
    """Score each match by how much of the utterance literal template text explains (wildcards explain little),
    prefer slots said aloud over slots filled from context, and drop duplicate readings."""
    best: dict[tuple[str, str], Hypothesis] = {}
    for order, result in enumerate(results):
        hyp = _hypothesis(result, text, order)
        key = (hyp.intent, repr(sorted(hyp.slots.items())))
        if key not in best or hyp.score > best[key].score:
            best[key] = hyp
    return sorted(best.values(), key=lambda h: -h.score)


def _hypothesis(result: RecognizeResult, text: str, order: int) -> Hypothesis:
    fixed = set(result.intent_data.slots)
    wildcard_chars = sum(len(e.text.strip()) for e in result.entities_list if e.is_wildcard)
    said = [e for e in result.entities_list if e.text and not e.is_wildcard]
    from_context = tuple(e.name for e in result.entities_list if not e.text and e.name not in fixed)
    coverage = 1.0 - wildcard_chars / max(1, len(text))
    named = any(e.name == "name" for e in said)
    score = 0.55 + 0.4 * coverage + 0.01 * min(len(said), 3) + 0.02 * named + 0.01 * len(fixed)
    score -= 0.03 * len(from_context)
    score -= 0.001 * order + (0.05 if result.intent.name in OWN_INTENTS else 0.0)
    return Hypothesis(
        intent=result.intent.name,
        slots={e.name: _value(e) for e in result.entities_list},
        score=round(min(1.0, max(0.0, score)), 4),
        slot_text={e.name: e.text.strip() for e in result.entities_list if e.text},
        from_context=from_context,
    )


def _value(entity: MatchEntity) -> Any:
    value = entity.value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if entity.is_wildcard and isinstance(value, str):
        return value.strip()
    return value


_THE = r"(?:the |my |our )?"
# Common device-command shapes with the device's name as a free group: the fallback for names hassil could not
# match, far cheaper than hassil's unmatched-entity search (which costs 5-15 ms per failed utterance).
LOOSE_PATTERNS: tuple[tuple[re.Pattern[str], str, dict[str, Any]], ...] = (
    (re.compile(rf"^(?:please )?(?:turn|switch) on {_THE}(?P<name>.+?)(?: please)?$"), "HassTurnOn", {}),
    (re.compile(rf"^(?:please )?(?:turn|switch) {_THE}(?P<name>.+?) on(?: please)?$"), "HassTurnOn", {}),
    (re.compile(rf"^(?:please )?(?:turn|switch) off {_THE}(?P<name>.+?)(?: please)?$"), "HassTurnOff", {}),
    (re.compile(rf"^(?:please )?(?:turn|switch) {_THE}(?P<name>.+?) off(?: please)?$"), "HassTurnOff", {}),
    (re.compile(rf"^lock {_THE}(?P<name>.+)$"), "HassTurnOn", {"domain": "lock"}),
    (re.compile(rf"^unlock {_THE}(?P<name>.+)$"), "HassTurnOff", {"domain": "lock"}),
    (re.compile(rf"^(?:open|raise) {_THE}(?P<name>.+)$"), "HassTurnOn", {}),
    (re.compile(rf"^(?:close|lower) {_THE}(?P<name>.+)$"), "HassTurnOff", {}),
    (
        re.compile(rf"^(?:set|dim|brighten) {_THE}(?P<name>.+?) to (?P<brightness>\d+)(?: ?%| percent)?$"),
        "HassLightSet",
        {},
    ),
    (
        re.compile(rf"^(?:(?:what is|what's|whats) the temperature (?:of|in)|how hot is) {_THE}(?P<name>.+?)$"),
        "GetDeviceState",
        {"attribute": "temperature"},
    ),
    (
        re.compile(rf"^(?:is|are) {_THE}(?P<name>.+?) (?P<state>on|off|open|closed|locked|unlocked)$"),
        "HassGetState",
        {},
    ),
)


def parse_loose(nlu: NLU, text: str) -> list[Hypothesis]:
    """Fallback when nothing matched: device commands whose ``{name}`` is not in the home, kept as spoken text so
    entity resolution can try fuzzy and phonetic matching or answer "no such device". Scored low on purpose."""
    return nlu.memo(("loose", text), lambda: _parse_loose(nlu, text))


def _parse_loose(nlu: NLU, text: str) -> list[Hypothesis]:
    text = normalize(text)
    out: list[Hypothesis] = []
    for pattern, intent, fixed in LOOSE_PATTERNS:
        match = pattern.match(text)
        if match:
            slots = {k: int(v) if v.isdigit() else v for k, v in match.groupdict().items()}
            out.append(Hypothesis(intent, {**fixed, **slots}, 0.49 - 0.001 * len(out)))
    return out[: nlu.max_hypotheses]
