"""Context scenarios: named situations where the right reading of an utterance depends on context, instantiated on
ANY home (shipped or unseen) from what that home contains.

Each scenario builds cases in contrasting situations (oven on vs. off, screen vs. speaker, morning vs. evening), so a
context-blind pipeline cannot get them all right by a lucky default. A scenario the home cannot host (no oven, no
screen) yields no cases. Users who are not in the home file get their tastes as taught preferences, so every
scenario also runs on homes without people.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from selflearn.home import Device, Endpoint, Home, Person
from selflearn.runtime.runtime import Interpretation, Runtime
from selflearn.schema import Preference, PreferenceKind
from selflearn.text import normalize

GUEST = "scenario.guest"
DAY = datetime(2026, 3, 2).date()
TITLES = ("hunger games", "the hobbit", "dune", "little women", "jurassic park", "the martian", "harry potter", "emma")
GENRES = ("jazz", "rock", "classical", "blues", "country", "soul")
TEAMS = ("Golden State Warriors", "Boston Celtics", "Chicago Bulls", "Seattle Sounders", "New York Yankees")
CUISINES = ("Italian", "Thai", "Mexican", "Japanese", "Indian", "Greek")
PLACES = (
    ("wilkerson", "Wilkerson, California"),
    ("springfield", "Springfield, Illinois"),
    ("portland", "Portland, Oregon"),
    ("paris", "Paris, Texas"),
    ("columbia", "Columbia, Missouri"),
)
ALIASES = ("big light", "the thing", "mood light", "my corner", "old faithful", "sparkle")
PHRASES = ("movie night", "bedtime", "lights out please", "wind down", "good night house")


@dataclass(frozen=True)
class Case:
    scenario: str
    """Name of the scenario the case belongs to."""
    home: Home
    """The home it is said in."""
    text: str
    """What is said."""
    endpoint_id: str
    """The endpoint it is said to."""
    now: datetime
    """Local time it is said at."""
    expect_intent: str
    """The intent a right reading has."""
    expect_slots: dict[str, Any] = field(default_factory=dict)
    """Slots a right reading must contain."""
    expect_devices: tuple[str, ...] | None = None
    """Device ids a right reading acts on; None: not checked."""
    user_id: str = GUEST
    """Who says it."""
    state: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Device states that differ from the home file's."""
    preferences: tuple[Preference, ...] = ()
    """What the speaker has taught."""

    def run(self, *, context: bool) -> Interpretation:
        prefs = list(self.preferences)
        rt = Runtime(self.home, context=context, preferences=lambda user: prefs if user == self.user_id else [])
        for device_id, values in self.state.items():
            rt.state[device_id].update(values)
        return rt.interpret(self.text, user_id=self.user_id, endpoint_id=self.endpoint_id, now=self.now)

    def correct(self, out: Interpretation) -> bool:
        """The top reading has the expected intent and slots, and acts on exactly the expected devices."""
        top = out.hypotheses[0] if out.hypotheses else None
        if top is None or top.intent != self.expect_intent or out.turn.result_status in ("no_match", "no_entity"):
            return False
        if any(_slot_value(top.slots.get(k)) != _slot_value(v) for k, v in self.expect_slots.items()):
            return False
        devices = tuple(sorted(out.turn.resolved_entities.get("devices", [])))
        return self.expect_devices is None or devices == tuple(sorted(self.expect_devices))


def _slot_value(value: Any) -> Any:
    """A slot value as compared with the expected one (text normalised, numbers as they are)."""
    return normalize(value) if isinstance(value, str) else value


Builder = Callable[[Home, random.Random], Iterator[Case]]
SCENARIOS: dict[str, Builder] = {}


def scenario(name: str) -> Callable[[Builder], Builder]:
    def register(fn: Builder) -> Builder:
        SCENARIOS[name] = fn
        return fn

    return register


def cases(home: Home, rng: random.Random, *, per_scenario: int = 4) -> list[Case]:
    """``per_scenario`` rounds of every scenario the home can host (each round gives contrasting cases)."""
    out: list[Case] = []
    for name in sorted(SCENARIOS):
        for _ in range(per_scenario):
            out.extend(SCENARIOS[name](home, rng))
    return out


def at(home: Home, hour: int, minute: int = 0) -> datetime:
    """A local wall-clock time in the home, as the UTC instant the runtime receives."""
    local = datetime.combine(DAY, time(hour, minute), tzinfo=ZoneInfo(home.timezone))
    return local.astimezone(UTC)


def _pref(kind: PreferenceKind, value: str, key: str = "", user: str = GUEST) -> Preference:
    return Preference(user_id=user, kind=kind, key=key, value=value, ts=datetime(2026, 1, 1, tzinfo=UTC))


def _any_time(home: Home, rng: random.Random) -> datetime:
    return at(home, rng.randrange(7, 23), rng.choice((0, 15, 30, 45)))


def _endpoint(home: Home, rng: random.Random, *types: str) -> Endpoint | None:
    eps = [e for e in home.endpoints if not types or e.type in types]
    return rng.choice(eps) if eps else None


def _taste_user(
    home: Home, kind: str, rng: random.Random, values: tuple[str, ...]
) -> tuple[str, str, tuple[Preference, ...]]:
    """Half the time a person of the home with that habit, else a guest who taught it as a preference."""
    people: list[Person] = [p for p in home.people if p.habits.get(kind)]
    if people and rng.random() < 0.5:
        person = rng.choice(people)
        return person.id, person.habits[kind], ()
    value = rng.choice(values)
    return GUEST, value, (_pref(kind, value),)  # type: ignore[arg-type]


@scenario("oven_on_temperature")
def _oven_temperature(home: Home, rng: random.Random) -> Iterator[Case]:
    """Oven on: "what is the temperature" is the oven; off: the room (thermostat)."""
    hot = [d for d in home.devices if d.domain != "climate" and "temperature" in d.state and "power" in d.state]
    climate = [d for d in home.devices if d.domain == "climate" and "temperature" in d.state]
    ep = _endpoint(home, rng)
    if not hot or not climate or ep is None:
        return
    oven = rng.choice(hot)
    text = rng.choice(("what is the temperature", "what's the temperature", "how hot is it"))
    off = {d.id: {"power": False} for d in hot}
    room = next((d for d in climate if d.area == ep.area), climate[0])
    now = _any_time(home, rng)
    yield Case("oven_on_temperature", home, text, ep.id, now, "GetDeviceState", {"name": oven.id},
               state={**off, oven.id: {"power": True, "temperature": 180}})  # fmt: skip
    yield Case("oven_on_temperature", home, text, ep.id, now, "GetDeviceState", {"name": room.id}, state=off)


@scenario("screen_vs_speaker_media")
def _media(home: Home, rng: random.Random) -> Iterator[Case]:
    """Screen: "play Hunger Games" is the movie; speaker: the audiobook."""
    screen, speaker = _endpoint(home, rng, "screen", "tv", "display"), _endpoint(home, rng, "speaker")
    if screen is None or speaker is None:
        return
    title = rng.choice(TITLES)
    text = rng.choice(("play {t}", "put on {t}")).format(t=title)
    now = _any_time(home, rng)
    yield Case(
        "screen_vs_speaker_media", home, text, screen.id, now, "PlayMedia", {"title": title, "media_type": "movie"}
    )
    yield Case("screen_vs_speaker_media", home, text, speaker.id, now, "PlayMedia",
               {"title": title, "media_type": "audiobook"})  # fmt: skip


@scenario("habit_music_genre")
def _genre(home: Home, rng: random.Random) -> Iterator[Case]:
    """A jazz listener's "play music" is jazz; a listener with no known taste gets plain music."""
    ep = _endpoint(home, rng)
    if ep is None:
        return
    user, genre, prefs = _taste_user(home, "music_genre", rng, GENRES)
    text = rng.choice(("play music", "play some music", "put on some music", "play something"))
    now = _any_time(home, rng)
    yield Case("habit_music_genre", home, text, ep.id, now, "PlayMedia", {"media_type": "music", "genre": genre},
               user_id=user, preferences=prefs)  # fmt: skip


@scenario("time_of_day_program")
def _program(home: Home, rng: random.Random) -> Iterator[Case]:
    """In the morning "start it" / "start brewing" is the coffee maker; in the evening "start it" is the oven."""
    coffee = [d for d in home.devices if d.domain == "coffee_maker"]
    oven = [d for d in home.devices if d.domain == "oven"]
    ep = _endpoint(home, rng)
    if not coffee or ep is None:
        return
    morning = at(home, rng.randrange(6, 10), rng.choice((0, 20, 40)))
    yield Case("time_of_day_program", home, "start brewing", ep.id, morning, "StartProgram", {"name": coffee[0].id})
    if oven:
        text = rng.choice(("start it", "start the machine", "start it up"))
        yield Case("time_of_day_program", home, text, ep.id, morning, "StartProgram", {"name": coffee[0].id})
        evening = at(home, rng.randrange(17, 21), rng.choice((0, 20, 40)))
        yield Case("time_of_day_program", home, text, ep.id, evening, "StartProgram", {"name": oven[0].id})


@scenario("speaker_location")
def _location(home: Home, rng: random.Random) -> Iterator[Case]:
    """ "Turn on the lights" means the lights of the room the speaker is in."""
    eps = [e for e in home.endpoints if any(d.domain == "light" for d in home.devices_in(e.area))]
    if not eps:
        return
    ep = rng.choice(eps)
    lights = tuple(d.id for d in home.devices_in(ep.area) if d.domain == "light")
    on = rng.random() < 0.5
    text = rng.choice(("turn {s} the lights", "switch {s} the lights", "lights {s}")).format(s="on" if on else "off")
    intent = "HassTurnOn" if on else "HassTurnOff"
    yield Case("speaker_location", home, text, ep.id, _any_time(home, rng), intent, {}, lights)


@scenario("team_preference")
def _team(home: Home, rng: random.Random) -> Iterator[Case]:
    """A Warriors fan's "turn on the game" is the Warriors game."""
    ep = _endpoint(home, rng)
    if ep is None:
        return
    user, team, prefs = _taste_user(home, "team", rng, TEAMS)
    text = rng.choice(("turn on the game", "put the game on", "watch the game", "show me the game"))
    yield Case("team_preference", home, text, ep.id, _any_time(home, rng), "WatchGame", {"team": team},
               user_id=user, preferences=prefs)  # fmt: skip


@scenario("cuisine_preference")
def _cuisine(home: Home, rng: random.Random) -> Iterator[Case]:
    """Someone who likes Italian food gets Italian restaurants first."""
    ep = _endpoint(home, rng)
    if ep is None:
        return
    user, cuisine, prefs = _taste_user(home, "cuisine", rng, CUISINES)
    text = rng.choice(("find a restaurant", "where can I eat tonight", "recommend a place to eat", "I'm hungry"))
    yield Case("cuisine_preference", home, text, ep.id, _any_time(home, rng), "FindRestaurant", {"cuisine": cuisine},
               user_id=user, preferences=prefs)  # fmt: skip


@scenario("place_preference")
def _place(home: Home, rng: random.Random) -> Iterator[Case]:
    """ "Weather in Wilkerson" is the Wilkerson the user taught (Wilkerson, California)."""
    ep = _endpoint(home, rng)
    if ep is None:
        return
    key, value = rng.choice(PLACES)
    text = rng.choice(("what's the weather in {c}", "how is the weather in {c}", "weather in {c}")).format(c=key)
    yield Case("place_preference", home, text, ep.id, _any_time(home, rng), "WeatherIn", {"city": value},
               preferences=(_pref("place", value, key),))  # fmt: skip


@scenario("device_alias")
def _alias(home: Home, rng: random.Random) -> Iterator[Case]:
    """ "The big light" is the device the user taught it to be."""
    switchable = [d for d in home.devices if d.domain in ("light", "switch", "fan")]
    ep = _endpoint(home, rng)
    if not switchable or ep is None:
        return
    device: Device = rng.choice(switchable)
    alias = rng.choice(
        [a for a in ALIASES if not any(normalize(a) in normalize(n) for d in home.devices for n in d.names)]
    )
    text = f"turn on the {alias}" if not alias.startswith("the ") else f"turn on {alias}"
    yield Case("device_alias", home, text, ep.id, _any_time(home, rng), "HassTurnOn", {}, (device.id,),
               preferences=(_pref("device_alias", device.id, alias),))  # fmt: skip


@scenario("taught_phrase")
def _phrase(home: Home, rng: random.Random) -> Iterator[Case]:
    """A taught phrase ("movie night") stands for the utterance it was taught for."""
    lights = [d for d in home.devices if d.domain == "light"]
    ep = _endpoint(home, rng)
    if not lights or ep is None:
        return
    device = rng.choice(lights)
    phrase = rng.choice(PHRASES)
    meaning = f"turn off the {device.name.lower()}"
    twins = tuple(d.id for d in home.devices if normalize(d.name) == normalize(device.name))
    expected = (device.id,) if len(twins) == 1 else None
    yield Case("taught_phrase", home, phrase, ep.id, _any_time(home, rng), "HassTurnOff", {}, expected,
               preferences=(_pref("phrase", meaning, phrase),))  # fmt: skip


@scenario("same_name_location")
def _twins(home: Home, rng: random.Random) -> Iterator[Case]:
    """Several devices share a name ("Lamp" in every bedroom): the one in the speaker's room."""
    by_name: dict[str, list[Device]] = {}
    for d in home.devices:
        by_name.setdefault(normalize(d.name), []).append(d)
    groups = [
        (name, [d for d in devs if any(e.area == d.area for e in home.endpoints)])
        for name, devs in by_name.items()
        if len({d.area for d in devs}) > 1
    ]
    groups = [(n, ds) for n, ds in groups if len(ds) > 1]
    if not groups:
        return
    name, devices = rng.choice(groups)
    device = rng.choice(devices)
    ep = rng.choice([e for e in home.endpoints if e.area == device.area])
    yield Case("same_name_location", home, f"turn on the {name}", ep.id, _any_time(home, rng), "HassTurnOn", {},
               (device.id,))  # fmt: skip


@scenario("explicit_words_win")
def _explicit(home: Home, rng: random.Random) -> Iterator[Case]:
    """Controls: when the words say it, context must not overrule them (an audiobook asked for on a screen, rock for
    a jazz fan, Thai for an Italian-food lover, a named light in another room)."""
    ep = _endpoint(home, rng)
    if ep is None:
        return
    now = _any_time(home, rng)
    screen = _endpoint(home, rng, "screen", "tv", "display")
    if screen is not None:
        title = rng.choice(TITLES)
        yield Case("explicit_words_win", home, f"play the audiobook {title}", screen.id, now, "PlayMedia",
                   {"title": title, "media_type": "audiobook"})  # fmt: skip
    genre = rng.choice(GENRES)
    other = rng.choice([g for g in GENRES if g != genre])
    yield Case("explicit_words_win", home, f"play some {other} music", ep.id, now, "PlayMedia",
               {"media_type": "music", "genre": other}, preferences=(_pref("music_genre", genre),))  # fmt: skip
    cuisine = rng.choice(CUISINES)
    asked = rng.choice([c for c in CUISINES if c != cuisine])
    yield Case("explicit_words_win", home, f"find a {asked.lower()} restaurant", ep.id, now, "FindRestaurant",
               {"cuisine": asked}, preferences=(_pref("cuisine", cuisine),))  # fmt: skip
    elsewhere = [d for d in home.devices if d.domain == "light" and d.area != ep.area]
    unique = [d for d in elsewhere if sum(normalize(x.name) == normalize(d.name) for x in home.devices) == 1]
    if unique:
        light = rng.choice(unique)
        yield Case("explicit_words_win", home, f"turn on the {light.name.lower()}", ep.id, now, "HassTurnOn", {},
                   (light.id,))  # fmt: skip
    hot = [d for d in home.devices if d.domain != "climate" and "temperature" in d.state and "power" in d.state]
    climate = [d for d in home.devices if d.domain == "climate"]
    if hot and climate:
        room = rng.choice(climate)
        yield Case("explicit_words_win", home, f"what is the temperature of the {room.name.lower()}", ep.id, now,
                   "GetDeviceState", {"name": room.id}, state={hot[0].id: {"power": True}})  # fmt: skip
