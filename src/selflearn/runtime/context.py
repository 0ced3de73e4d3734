"""Context: turn NLU hypotheses into concrete candidates and re-rank them with what the assistant knows about the
moment: device state, the endpoint's type and area, the time of day and the user's routines, habits and taught
preferences.

Two steps. ``expand`` is context-free: it canonicalises overlapping intents (HA's media search becomes
``PlayMedia``, HA's climate temperature becomes ``GetDeviceState``) and enumerates the readings an utterance leaves
open (which device "the temperature" is about, which medium "play Hunger Games" means, which appliance "start it"
starts), each with a fixed prior, so that with context switched off the runtime still picks deterministically.
``score`` adds named, logged feature contributions, so every decision can be explained from the turn's trace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from selflearn.home import Device, Endpoint, Home, Person
from selflearn.runtime.nlu import Hypothesis
from selflearn.schema import Preference
from selflearn.text import normalize

MEDIA_TYPES = ("music", "movie", "audiobook")
PROGRAMS = {"coffee_maker": "brew", "oven": "preheat", "vacuum": "clean"}
MORNING = range(5, 11)
EVENING = range(17, 22)
ROUTINE_WINDOW_MIN = 75
NLU_MARGIN = 0.1

# Feature weights: large enough to overturn a prior (0.05 steps), small next to an NLU gap between a literal
# template match and a wildcard guess (0.1+), so context breaks ties and never overrules what was said.
W_ON = 0.3
W_SCREEN_MOVIE = 0.3
W_SPEAKER_AUDIO = 0.2
W_HABIT = 0.25
W_PREFERENCE = 0.35
W_TIME = 0.15
W_ROUTINE = 0.3
W_AREA = 0.1


@dataclass
class Candidate:
    """A concrete reading: intent + filled slots, the NLU score, and the context features that moved it."""

    intent: str
    """Intent of the reading."""
    slots: dict[str, Any]
    """Filled slots: name -> value (device and area ids after expansion)."""
    nlu_score: float
    """The NLU's score of the reading it came from."""
    prior: float = 0.0
    """Fixed prior expansion gave the reading, so the pick stays deterministic without context."""
    features: dict[str, float] = field(default_factory=dict)
    """Context feature name -> value that moved it."""
    open_slots: tuple[str, ...] = ()
    """Slots filled by expansion, not said: the only ones context may argue about."""

    @property
    def raw(self) -> float:
        """Unbounded sum, for ranking (clamping would tie two strongly supported readings)."""
        return self.nlu_score + self.prior + sum(self.features.values())

    @property
    def score(self) -> float:
        return max(0.0, min(1.0, self.raw))

    def to_json(self) -> dict[str, Any]:
        return {
            "intent": self.intent,
            "slots": self.slots,
            "nlu": round(self.nlu_score, 4),
            "prior": round(self.prior, 4),
            "features": {k: round(v, 4) for k, v in self.features.items()},
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class Situation:
    """Everything context may look at for one utterance."""

    home: Home
    """The home spoken in."""
    endpoint: Endpoint
    """The endpoint spoken to (its room is the first context)."""
    now: datetime
    """Local time of the utterance."""
    state: Mapping[str, Mapping[str, Any]]
    """Device id -> its current state."""
    person: Person | None = None
    """Who speaks, if known."""
    preferences: Sequence[Preference] = ()
    """What this person taught."""
    routines: Sequence[tuple[int, str, dict[str, Any]]] = ()
    """The person's routines: (minute of day, intent, key slots)."""

    def preference(self, kind: str, key: str = "") -> str | None:
        key = normalize(key)
        scope_ok = [p for p in self.preferences if p.kind == kind and p.scope in ("*", self.home.id)]
        for p in sorted(scope_ok, key=lambda p: p.ts, reverse=True):
            if not key or normalize(p.key) == key:
                return p.value
        return None

    def taste(self, kind: str) -> tuple[str | None, str]:
        """A taught preference wins over an observed habit."""
        taught = self.preference(kind)
        if taught:
            return taught, "preference"
        habit = self.person.habits.get(kind) if self.person else None
        return habit, "habit"


def expand(hypotheses: Sequence[Hypothesis], home: Home) -> list[Candidate]:
    """Context-free candidates, best prior first (the order the runtime uses with context off)."""
    out: list[Candidate] = []
    for hyp in hypotheses:
        out.extend(_expand_one(hyp, home))
    seen: dict[str, Candidate] = {}
    for cand in out:
        key = cand.intent + repr(sorted(cand.slots.items()))
        if key not in seen or cand.nlu_score + cand.prior > seen[key].nlu_score + seen[key].prior:
            seen[key] = cand
    return sorted(seen.values(), key=lambda c: -(c.nlu_score + c.prior))


def _expand_one(hyp: Hypothesis, home: Home) -> list[Candidate]:
    slots = {k: v for k, v in hyp.slots.items() if v is not None}
    intent = hyp.intent
    if intent == "HassMediaSearchAndPlay":
        intent = "PlayMedia"
        slots = {k: v for k, v in slots.items() if k not in ("search_query", "media_class")}
        slots["title"] = hyp.slots.get("search_query")
        media_class = hyp.slots.get("media_class")
        if media_class in ("movie", "music", "audiobook", "podcast"):
            slots["media_type"] = media_class
        elif media_class in ("track", "album", "artist", "playlist", "song"):
            slots["media_type"] = "music"
    if intent == "HassClimateGetTemperature":
        intent = "GetDeviceState"
        slots["attribute"] = "temperature"
        if "area" in hyp.from_context:
            slots.pop("area", None)
    if intent == "PlayMedia" and slots.get("title") and "media_type" not in slots:
        return [
            Candidate(intent, {**slots, "media_type": m}, hyp.score, -0.05 * i, open_slots=("media_type",))
            for i, m in enumerate(MEDIA_TYPES)
        ]
    if intent == "GetDeviceState" and "name" not in slots:
        devices = [d for d in home.devices if "temperature" in d.state]
        if "area" in slots:
            devices = [d for d in devices if d.area == slots["area"]] or devices
        devices.sort(key=lambda d: d.domain != "climate")
        named = [
            Candidate(intent, {**slots, "name": d.id}, hyp.score, -0.05 * i, open_slots=("name",))
            for i, d in enumerate(devices)
        ]
        return named or [Candidate(intent, slots, hyp.score)]
    if intent == "StartProgram" and "name" not in slots:
        devices = [d for d in home.devices if d.domain in PROGRAMS]
        if "program" in slots:
            devices = [d for d in devices if PROGRAMS[d.domain] == slots["program"]]
        return [
            Candidate(
                intent,
                {**slots, "name": d.id, "program": PROGRAMS[d.domain]},
                hyp.score,
                -0.05 * i,
                open_slots=("name",),
            )
            for i, d in enumerate(devices)
        ] or [Candidate(intent, slots, hyp.score)]
    return [Candidate(intent, slots, hyp.score)]


def score(candidates: list[Candidate], situation: Situation) -> list[Candidate]:
    """Add context features to every candidate (in place) and return them best first. Readings the NLU ranked
    clearly lower than its best (more than ``NLU_MARGIN``) get no context features: context chooses among what
    the words allow, it does not resurrect a worse parse."""
    best = max((c.nlu_score for c in candidates), default=0.0)
    for cand in candidates:
        _fill_from_tastes(cand, situation)
        if cand.nlu_score >= best - NLU_MARGIN:
            _features(cand, situation)
    return sorted(candidates, key=lambda c: -c.raw)


def _fill_from_tastes(cand: Candidate, sit: Situation) -> None:
    """Leave-it-to-me slots: the user's team, cuisine, genre, and the real name of a taught place."""
    slots = cand.slots
    if cand.intent == "WatchGame" and "team" not in slots:
        team, how = sit.taste("team")
        if team:
            slots["team"] = team
            cand.features[f"team_{how}"] = W_PREFERENCE if how == "preference" else W_HABIT
    elif cand.intent == "FindRestaurant" and "cuisine" not in slots:
        cuisine, how = sit.taste("cuisine")
        if cuisine:
            slots["cuisine"] = cuisine
            cand.features[f"cuisine_{how}"] = W_PREFERENCE if how == "preference" else W_HABIT
    elif (
        cand.intent == "PlayMedia"
        and slots.get("media_type") == "music"
        and not (slots.get("title") or slots.get("genre") or slots.get("artist"))
    ):
        genre, how = sit.taste("music_genre")
        if genre:
            slots["genre"] = genre
            cand.features[f"genre_{how}"] = W_PREFERENCE if how == "preference" else W_HABIT
    elif cand.intent == "WeatherIn" and slots.get("city"):
        place = sit.preference("place", str(slots["city"]))
        if place:
            slots["city"] = place
            cand.features["place_preference"] = W_PREFERENCE


def _features(cand: Candidate, sit: Situation) -> None:
    device = _device(sit.home, cand.slots.get("name")) if "name" in cand.open_slots else None
    if cand.intent == "GetDeviceState" and device is not None:
        if device.domain != "climate" and sit.state.get(device.id, {}).get("power"):
            cand.features["device_on"] = W_ON
        if device.domain == "climate" and device.area == sit.endpoint.area:
            cand.features["same_area"] = W_AREA
    if cand.intent == "PlayMedia" and "media_type" in cand.open_slots:
        media = cand.slots.get("media_type")
        screen = sit.endpoint.type in ("screen", "tv", "display")
        if screen and media == "movie":
            cand.features["screen_movie"] = W_SCREEN_MOVIE
        elif not screen and media == "audiobook":
            cand.features["speaker_audiobook"] = W_SPEAKER_AUDIO
    if cand.intent == "StartProgram" and device is not None:
        hour = sit.now.hour
        program = cand.slots.get("program")
        if (program == "brew" and hour in MORNING) or (program == "preheat" and hour in EVENING):
            cand.features["time_of_day"] = W_TIME
    minute = sit.now.hour * 60 + sit.now.minute
    for at, intent, key_slots in sit.routines:
        near = min(abs(minute - at), 1440 - abs(minute - at)) <= ROUTINE_WINDOW_MIN
        if near and intent == cand.intent and all(cand.slots.get(k) == v for k, v in key_slots.items()):
            cand.features["routine"] = W_ROUTINE
            break


def _device(home: Home, device_id: Any) -> Device | None:
    if not isinstance(device_id, str):
        return None
    return next((d for d in home.devices if d.id == device_id), None)
