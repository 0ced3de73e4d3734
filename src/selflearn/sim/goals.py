"""What simulated people want: goal kinds, their true intent and slots, the device states that mean success.

A :class:`Goal` is the truth the gold record carries (intent, slots) plus how to tell from the runtime's turn and the
home's device states whether it was met. ``words`` are what a person says for each slot (the Kitchen Light may be
"kitchen light", "ceiling light", or a private "big light"); phrasing (``sim/phrasing.py``) puts them in sentences.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from selflearn.home import Device, Home, Person
from selflearn.sim.names import SHOPPING, TEAM_SAID

# Goal kind -> relative frequency in a day of requests (roughly: lights and media dominate real smart-home use).
KIND_WEIGHTS: dict[str, float] = {
    "device_on": 9, "device_off": 8, "lights_on": 6, "lights_off": 6, "lights_dim": 3, "lights_up": 2,
    "set_temperature": 3, "get_temperature": 2, "weather": 6, "weather_in": 3, "play_genre": 5, "play_music": 4,
    "volume_up": 2, "volume_down": 2, "mute": 1, "pause": 2, "next": 1, "timer": 4, "shopping": 3, "time": 3,
    "vacuum": 2, "coffee": 2, "preheat": 2, "restaurant": 2, "restaurant_habit": 1, "game": 1, "game_habit": 1,
    "cover_open": 2, "cover_close": 2, "impossible": 2.5,
}  # fmt: skip
# Multi-step goals: a named scene is several requests in a row, one session, one goal id.
SCENES: dict[str, tuple[str, ...]] = {
    "movie_night": ("lights_dim", "cover_close", "device_on"),
    "bedtime": ("lights_off", "device_off"),
    "morning": ("coffee", "weather"),
    "dinner": ("preheat", "timer"),
}
# Every intent a goal can have (simulated annotators confuse intents among these).
INTENTS = (
    "HassTurnOn", "HassTurnOff", "HassLightSet", "HassSetPosition", "HassClimateSetTemperature", "GetDeviceState",
    "HassVacuumStart", "StartProgram", "HassGetWeather", "WeatherIn", "PlayMedia", "HassSetVolumeRelative",
    "HassMediaPlayerMute", "HassMediaPause", "HassMediaNext", "HassStartTimer", "HassShoppingListAddItem",
    "HassGetCurrentTime", "FindRestaurant", "WatchGame",
)  # fmt: skip
SWITCHABLE = ("light", "switch", "fan", "media_player")
# Slots whose wrong value is an entity problem (vs. a misheard number, an NLU slot-filling problem).
ENTITY_SLOTS = frozenset({"city", "genre", "team", "cuisine"})


@dataclass(frozen=True)
class Goal:
    """One thing a person wants done, with the truth the gold record reports."""

    kind: str
    """Goal kind, e.g. "device_on", "cover_open" (phrasing templates are keyed by it)."""
    intent: str | None
    """The intent that achieves it; None for chatter."""
    slots: dict[str, Any]
    """The slots that achieve it."""
    words: dict[str, str] = field(default_factory=dict)
    """Slot -> the words the person uses for it."""
    intents: frozenset[str] = frozenset()
    """Other intents that also achieve it."""
    effects: tuple[tuple[str, str, Any], ...] = ()
    """(device id, state key, value) that must hold after success."""
    expect: dict[str, str] = field(default_factory=dict)
    """Slot -> value the turn's slots must contain."""
    implicit: frozenset[str] = frozenset()
    """Slots the person leaves to the assistant (their taste)."""
    official: dict[str, str] = field(default_factory=dict)
    """The home's own name for a slot word (for rephrasing)."""
    impossible: bool = False
    """It cannot be done in this home."""
    addressed: bool = True
    """Said to the assistant; False: TV/room chatter, a false wake."""
    text: str | None = None
    """A fixed wording (a routine's), else phrasing chooses one."""

    @property
    def targets(self) -> frozenset[str]:
        return frozenset(d for d, _, _ in self.effects)


def spoken(name: str) -> str:
    return name.lower().replace("_", " ")


def device_words(device: Device) -> list[str]:
    return [spoken(n) for n in device.names]


class GoalFactory:
    """Draws goals a given person could have in a given home (only kinds the home can serve, mostly)."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.by_domain: dict[str, list[Device]] = {}
        for d in home.devices:
            self.by_domain.setdefault(d.domain, []).append(d)
        self.lit_areas = sorted({d.area for d in self.by_domain.get("light", []) if d.area})
        self.kinds = [k for k in KIND_WEIGHTS if self._possible(k)]
        self.weights = [KIND_WEIGHTS[k] for k in self.kinds]
        self.scenes = [s for s, steps in SCENES.items() if all(self._possible(k) for k in steps)]

    def _possible(self, kind: str) -> bool:
        has = self.by_domain.get
        need: Mapping[str, bool] = {
            "device_on": any(has(d) for d in SWITCHABLE),
            "device_off": any(has(d) for d in SWITCHABLE),
            "lights_on": bool(self.lit_areas),
            "lights_off": bool(self.lit_areas),
            "lights_dim": bool(self.lit_areas),
            "lights_up": bool(self.lit_areas),
            "set_temperature": bool(has("climate")),
            "get_temperature": bool(has("climate")),
            "vacuum": bool(has("vacuum")),
            "coffee": bool(has("coffee_maker")),
            "preheat": bool(has("oven")),
            "cover_open": bool(has("cover")),
            "cover_close": bool(has("cover")),
            "game": bool(has("media_player")),
            "game_habit": bool(has("media_player")),
        }
        return need.get(kind, True)

    def draw_kind(self, rng: random.Random) -> str:
        return rng.choices(self.kinds, self.weights)[0]

    def make(self, kind: str, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        """A goal of ``kind`` for ``person`` speaking in ``area`` (devices near them are likelier targets)."""
        maker: Callable[[Person, Mapping[str, str], str, random.Random], Goal] = getattr(self, f"_{kind}")
        return maker(person, tastes, area, rng)

    # ---- devices
    def _device(self, domains: tuple[str, ...], area: str, rng: random.Random) -> Device:
        pool = [d for dom in domains for d in self.by_domain.get(dom, [])]
        near = [d for d in pool if d.area == area]
        return rng.choice(near if near and rng.random() < 0.6 else pool)

    def _power(self, on: bool, area: str, rng: random.Random) -> Goal:
        d = self._device(SWITCHABLE, area, rng)
        words = device_words(d)
        intent = "HassTurnOn" if on else "HassTurnOff"
        program = {"StartProgram"} if on and d.domain == "coffee_maker" else set()
        return Goal(
            "device_on" if on else "device_off",
            intent,
            {"name": d.id},
            {"device": rng.choice(words)},
            intents=frozenset({intent, *program}),
            effects=((d.id, "power", on),),
            official={"device": words[0]},
        )

    def _device_on(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return self._power(True, area, rng)

    def _device_off(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return self._power(False, area, rng)

    def _cover(self, open_: bool, area: str, rng: random.Random) -> Goal:
        d = self._device(("cover",), area, rng)
        words = device_words(d)
        intent = "HassTurnOn" if open_ else "HassTurnOff"
        return Goal(
            "cover_open" if open_ else "cover_close",
            intent,
            {"name": d.id},
            {"device": rng.choice(words)},
            intents=frozenset({intent, "HassSetPosition"}),
            effects=((d.id, "position", 100 if open_ else 0),),
            official={"device": words[0]},
        )

    def _cover_open(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return self._cover(True, area, rng)

    def _cover_close(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return self._cover(False, area, rng)

    def _lit_area(self, area: str, rng: random.Random) -> str:
        return area if area in self.lit_areas and rng.random() < 0.6 else rng.choice(self.lit_areas)

    def _area_lights(self, kind: str, area: str, rng: random.Random) -> Goal:
        a = self.home.area(self._lit_area(area, rng))
        lights = [d for d in self.by_domain["light"] if d.area == a.id]
        names = [spoken(a.name), *(spoken(x) for x in a.aliases)]
        if kind in ("lights_on", "lights_off"):
            on = kind == "lights_on"
            intent = "HassTurnOn" if on else "HassTurnOff"
            return Goal(
                kind,
                intent,
                {"area": a.id, "domain": "light"},
                {"area": rng.choice(names)},
                intents=frozenset({intent}),
                effects=tuple((d.id, "power", on) for d in lights),
                official={"area": names[0]},
            )
        pct = rng.choice((20, 30, 40) if kind == "lights_dim" else (70, 80, 100))
        return Goal(
            kind,
            "HassLightSet",
            {"area": a.id, "brightness": pct},
            {"area": rng.choice(names), "pct": str(pct)},
            intents=frozenset({"HassLightSet"}),
            effects=tuple((d.id, "brightness", pct) for d in lights),
            official={"area": names[0]},
        )

    def _lights_on(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return self._area_lights("lights_on", area, rng)

    def _lights_off(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return self._area_lights("lights_off", area, rng)

    def _lights_dim(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return self._area_lights("lights_dim", area, rng)

    def _lights_up(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return self._area_lights("lights_up", area, rng)

    def _set_temperature(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        climates = self.by_domain["climate"]
        d = next((c for c in climates if c.area == area), climates[0])  # the nearest thermostat
        t = rng.choice((18, 19, 20, 21, 22, 23))
        words = device_words(d)
        return Goal(
            "set_temperature",
            "HassClimateSetTemperature",
            {"temperature": t},
            {"temp": str(t), "device": words[0]},
            intents=frozenset({"HassClimateSetTemperature"}),
            effects=((d.id, "target_temperature", t),),
        )

    def _get_temperature(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return Goal(
            "get_temperature", "GetDeviceState", {"attribute": "temperature"}, intents=frozenset({"GetDeviceState"})
        )

    def _vacuum(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        d = self.by_domain["vacuum"][0]
        words = device_words(d)
        return Goal(
            "vacuum",
            "HassVacuumStart",
            {"name": d.id},
            {"device": rng.choice(words), "area": spoken(self.home.area(area).name)},
            intents=frozenset({"HassVacuumStart", "StartProgram", "HassTurnOn"}),
            effects=((d.id, "cleaning", True),),
            official={"device": words[0]},
        )

    def _coffee(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        d = self.by_domain["coffee_maker"][0]
        words = device_words(d)
        return Goal(
            "coffee",
            "StartProgram",
            {"program": "brew", "name": d.id},
            {"device": rng.choice(words)},
            intents=frozenset({"StartProgram", "HassTurnOn"}),
            effects=((d.id, "power", True),),
            official={"device": words[0]},
        )

    def _preheat(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        d = self.by_domain["oven"][0]
        t = rng.choice((180, 190, 200, 220))
        return Goal(
            "preheat",
            "StartProgram",
            {"program": "preheat", "name": d.id, "temperature": t},
            {"temp": str(t)},
            intents=frozenset({"StartProgram"}),
            effects=((d.id, "target_temperature", t),),
        )

    # ---- information and media
    def _weather(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return Goal("weather", "HassGetWeather", {}, intents=frozenset({"HassGetWeather", "WeatherIn"}))

    def _weather_in(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        city = tastes.get("city") or self.home.city or "Springfield, Illinois"
        town, _, state = city.partition(",")
        return Goal(
            "weather_in",
            "WeatherIn",
            {"city": city},
            {"city": spoken(town), "city_full": spoken(f"{town} {state.strip()}".strip())},
            intents=frozenset({"WeatherIn"}),
            expect={"city": spoken(town)},
        )

    def _play_genre(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        genre = tastes["music_genre"] if rng.random() < 0.6 else rng.choice(("jazz", "rock", "pop", "classical"))
        return Goal(
            "play_genre",
            "PlayMedia",
            {"media_type": "music", "genre": genre},
            {"genre": genre},
            intents=frozenset({"PlayMedia"}),
            expect={"genre": genre},
        )

    def _play_music(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        genre = tastes["music_genre"]
        return Goal(
            "play_music",
            "PlayMedia",
            {"media_type": "music", "genre": genre},
            {"genre": genre},
            intents=frozenset({"PlayMedia"}),
            expect={"genre": genre},
            implicit=frozenset({"genre"}),
        )

    def _simple(self, kind: str, intent: str) -> Goal:
        return Goal(kind, intent, {}, intents=frozenset({intent}))

    def _volume_up(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return self._simple("volume_up", "HassSetVolumeRelative")

    def _volume_down(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return self._simple("volume_down", "HassSetVolumeRelative")

    def _mute(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return self._simple("mute", "HassMediaPlayerMute")

    def _pause(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return self._simple("pause", "HassMediaPause")

    def _next(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return self._simple("next", "HassMediaNext")

    def _time(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return self._simple("time", "HassGetCurrentTime")

    def _timer(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        m = rng.choice((2, 3, 5, 10, 15, 20, 30))
        return Goal(
            "timer", "HassStartTimer", {"minutes": m}, {"minutes": str(m)},
            intents=frozenset({"HassStartTimer"}), expect={"minutes": str(m)},
        )  # fmt: skip

    def _shopping(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        item = rng.choice(SHOPPING)
        return Goal(
            "shopping", "HassShoppingListAddItem", {"item": item}, {"item": item},
            intents=frozenset({"HassShoppingListAddItem", "HassListAddItem"}), expect={"item": item},
        )  # fmt: skip

    def _restaurant(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        cuisine = tastes["cuisine"] if rng.random() < 0.5 else rng.choice(("Italian", "Thai", "Mexican", "Indian"))
        return Goal(
            "restaurant", "FindRestaurant", {"cuisine": cuisine}, {"cuisine": cuisine.lower()},
            intents=frozenset({"FindRestaurant"}), expect={"cuisine": cuisine.lower()},
        )  # fmt: skip

    def _restaurant_habit(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        cuisine = tastes["cuisine"]
        return Goal(
            "restaurant_habit", "FindRestaurant", {"cuisine": cuisine}, {"cuisine": cuisine.lower()},
            intents=frozenset({"FindRestaurant"}), expect={"cuisine": cuisine.lower()},
            implicit=frozenset({"cuisine"}),
        )  # fmt: skip

    def _game(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        team = tastes["team"]
        return Goal(
            "game", "WatchGame", {"team": team}, {"team": TEAM_SAID.get(team, team.lower())},
            intents=frozenset({"WatchGame"}), expect={"team": team.lower()},
        )  # fmt: skip

    def _game_habit(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        team = tastes["team"]
        return Goal(
            "game_habit", "WatchGame", {"team": team}, {"team": TEAM_SAID.get(team, team.lower())},
            intents=frozenset({"WatchGame"}), expect={"team": team.lower()}, implicit=frozenset({"team"}),
        )  # fmt: skip

    def _impossible(self, person: Person, tastes: Mapping[str, str], area: str, rng: random.Random) -> Goal:
        return Goal("impossible", None, {}, impossible=True)

    def chatter(self) -> Goal:
        return Goal("chatter", None, {}, addressed=False)


def opposite_kind(kind: str) -> str:
    """The goal kind that undoes ``kind`` (on <-> off, open <-> close, dim <-> up); any other kind is its own."""
    swap = {
        "device_on": "device_off",
        "lights_on": "lights_off",
        "cover_open": "cover_close",
        "lights_dim": "lights_up",
    }
    back = {v: k for k, v in swap.items()}
    return swap.get(kind) or back.get(kind, kind)
