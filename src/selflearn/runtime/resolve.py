"""Entity resolution: which of the home's devices a candidate is about.

Spoken names that hassil matched exactly arrive as device ids; names it could not match (the NLU's fallback parse
keeps them as text) are matched fuzzily (rapidfuzz) and phonetically (metaphone, so "bed side lamp" and "bedsite
lamp" still find the Bedside Lamp). Below a confidence floor the answer is a clear "no such device" (``no_entity``),
never the closest device by default. Several devices sharing a name are told apart by the speaker's area.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import jellyfish
from rapidfuzz import fuzz

from selflearn.home import Device, Endpoint, Home
from selflearn.runtime.context import Candidate
from selflearn.text import normalize

MIN_MATCH = 0.78
DEVICE_FREE = frozenset(
    {
        "HassGetWeather",
        "WeatherIn",
        "HassGetCurrentTime",
        "HassGetCurrentDate",
        "HassStartTimer",
        "HassCancelTimer",
        "HassCancelAllTimers",
        "HassIncreaseTimer",
        "HassDecreaseTimer",
        "HassPauseTimer",
        "HassUnpauseTimer",
        "HassTimerStatus",
        "HassShoppingListAddItem",
        "HassShoppingListCompleteItem",
        "HassListAddItem",
        "HassListCompleteItem",
        "HassListRemoveItem",
        "HassNevermind",
        "HassRespond",
        "HassBroadcast",
        "FindRestaurant",
        "WatchGame",
        "PlayMedia",
        "HassMediaPause",
        "HassMediaUnpause",
        "HassMediaNext",
        "HassMediaPrevious",
        "HassSetVolume",
        "HassSetVolumeRelative",
        "HassMediaPlayerMute",
        "HassMediaPlayerUnmute",
    }
)


@dataclass
class Resolution:
    status: Literal["ok", "no_entity"]
    """Whether it resolved ("ok") or nothing in the home matches ("no_entity")."""
    devices: list[str] = field(default_factory=list)
    """Device ids the request acts on."""
    area: str | None = None
    """The area the request names or implies, if any."""
    candidates: list[tuple[str, float]] = field(default_factory=list)
    """(device id, score) considered, best first."""
    confidence: float = 1.0
    """How sure the resolution is (0..1)."""
    missing: str | None = None
    """The slot that could not be resolved, if any."""

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "devices": self.devices,
            "area": self.area,
            "candidates": [[d, round(s, 4)] for d, s in self.candidates],
            "confidence": round(self.confidence, 4),
            "missing": self.missing,
        }


@dataclass(frozen=True)
class _Name:
    text: str
    phonetic: str
    device: Device


class Resolver:
    """Name index of one home, built once."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.devices = {d.id: d for d in home.devices}
        self.names = [_Name(normalize(n), _phonetic(n), d) for d in home.devices for n in d.names]
        self.areas = {a.id: a for a in home.areas}
        self.area_names = [(normalize(n), a.id) for a in home.areas for n in (a.name, *a.aliases)]

    def match(self, spoken: str, *, domain: str | None = None) -> list[tuple[str, float]]:
        """Devices whose name sounds or reads like ``spoken``, best first, with a 0..1 score."""
        text, phon = normalize(spoken), _phonetic(spoken)
        best: dict[str, float] = {}
        for name in self.names:
            if domain and name.device.domain != domain:
                continue
            lexical = max(fuzz.ratio(text, name.text), fuzz.token_sort_ratio(text, name.text)) / 100.0
            phonetic = fuzz.ratio(phon, name.phonetic) / 100.0 if phon and name.phonetic else 0.0
            s = max(lexical * (0.9 if len(text) < 4 else 1.0), 0.95 * phonetic)
            if s > best.get(name.device.id, 0.0):
                best[name.device.id] = s
        return sorted(best.items(), key=lambda kv: -kv[1])[:5]

    def match_area(self, spoken: str) -> tuple[str | None, float]:
        text = normalize(spoken)
        scored = [(fuzz.ratio(text, n) / 100.0, a) for n, a in self.area_names]
        s, a = max(scored, default=(0.0, None))
        return (a, s) if s >= MIN_MATCH else (None, s)

    def resolve(self, cand: Candidate, *, endpoint: Endpoint, use_area: bool = True) -> Resolution:
        slots = cand.slots
        area = slots.get("area")
        if isinstance(area, str) and area not in self.areas:
            area, score = self.match_area(area)
            if area is None:
                return Resolution("no_entity", missing=str(slots["area"]), confidence=score)
        name = slots.get("name")
        domain = slots.get("domain") if isinstance(slots.get("domain"), str) else None
        if isinstance(name, str) and name:
            if name in self.devices:
                pinned = "device_alias" in cand.features
                device = self._disambiguate(self.devices[name], endpoint if use_area and not pinned else None)
                return Resolution("ok", [device.id], area or device.area, [(device.id, 1.0)])
            room = next((a for n, a in self.area_names if n == normalize(name)), None)
            if room is not None and cand.intent in ("HassTurnOn", "HassTurnOff"):  # "turn on the kitchen"
                lights = [d.id for d in self.home.devices_in(room) if d.domain == "light"]
                if lights:
                    return Resolution("ok", lights, room, [(d, 1.0) for d in lights])
            ranked = self.match(name, domain=domain)
            if not ranked or ranked[0][1] < MIN_MATCH:
                return Resolution(
                    "no_entity", candidates=ranked, missing=name, confidence=ranked[0][1] if ranked else 0
                )
            return Resolution("ok", [ranked[0][0]], area, ranked, ranked[0][1])
        if cand.intent in DEVICE_FREE:
            return Resolution("ok", area=area)
        if area or domain:
            devices = [
                d.id
                for d in self.home.devices
                if (area is None or d.area == area) and (domain is None or d.domain in _domains(domain))
            ]
            if not devices:
                return Resolution("no_entity", area=area, missing=f"{domain or 'device'} in {area or 'the home'}")
            return Resolution("ok", devices, area, [(d, 1.0) for d in devices])
        return Resolution("ok")

    def _disambiguate(self, device: Device, endpoint: Endpoint | None) -> Device:
        """Same name in several rooms (``Lamp`` in every bedroom): the one in the speaker's room."""
        if endpoint is None:
            return device
        twins = [d for d in self.home.devices if normalize(d.name) == normalize(device.name)]
        return next((d for d in twins if d.area == endpoint.area), device)


def _domains(domain: str | list[str]) -> set[str]:
    return {domain} if isinstance(domain, str) else set(domain)


def _phonetic(text: str) -> str:
    return " ".join(jellyfish.metaphone(w) for w in normalize(text).split())
