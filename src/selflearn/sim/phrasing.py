"""How simulated people word a goal: the NLU's own templates, a shared pool of idiosyncratic wordings, and real
wordings from SLURP (people do not speak in the assistant's templates).

``CANONICAL`` wordings are ones the runtime parses (a test checks them); people fall back to them when rephrasing
after a failure. ``IDIOSYNCRATIC`` wordings are a pool shared by the whole population, so that the same failing
wording recurs across users and days, which is what rephrase mining needs. SLURP wordings are vendored from the
SLURP dev split, even ids only (``data/slurp/phrasings.jsonl``, CC BY 4.0; odd ids are evaluation-only).
"""

from __future__ import annotations

import json
import random
import re
from functools import cache

from selflearn import paths
from selflearn.sim.goals import Goal
from selflearn.sim.names import CHATTER, IMPOSSIBLE

PHRASINGS_PATH = paths.PACKAGE_DATA / "slurp" / "phrasings.jsonl"
_SLOT = re.compile(r"\{(\w+)\}")

CANONICAL: dict[str, tuple[str, ...]] = {
    "device_on": ("turn on the {device}", "switch on the {device}", "turn the {device} on"),
    "device_off": ("turn off the {device}", "switch off the {device}", "turn the {device} off"),
    "cover_open": ("open the {device}", "open the {area} {device}"),
    "cover_close": ("close the {device}", "close the {area} {device}"),
    "lights_on": ("turn on the lights in the {area}", "turn on the {area} lights", "switch on the {area} lights"),
    "lights_off": ("turn off the lights in the {area}", "turn off the {area} lights", "switch off the {area} lights"),
    "lights_dim": ("set the {area} brightness to {pct}%", "set the brightness in the {area} to {pct}%"),
    "lights_up": ("set the {area} brightness to {pct}%", "set the brightness in the {area} to {pct}%"),
    "set_temperature": ("set the temperature to {temp} degrees", "set the {device} to {temp}"),
    "get_temperature": ("what is the temperature", "what's the temperature"),
    "vacuum": ("start the {device}",),
    "coffee": ("make coffee", "brew coffee", "start brewing"),
    "preheat": ("preheat the oven to {temp} degrees",),
    "weather": ("what is the weather", "what's the weather"),
    "weather_in": ("what is the weather in {city}", "what's the weather in {city_full}", "weather in {city_full}"),
    "play_genre": ("play {genre} music", "play some {genre}"),
    "play_music": ("play {genre} music", "play some {genre}"),
    "volume_up": ("turn up the volume", "turn the volume up"),
    "volume_down": ("turn down the volume", "volume down"),
    "mute": ("mute",),
    "pause": ("pause the music", "pause"),
    "next": ("next song", "skip this song"),
    "timer": ("set a timer for {minutes} minutes",),
    "shopping": ("add {item} to my shopping list", "add {item} to the shopping list"),
    "time": ("what time is it",),
    "restaurant": ("find an {cuisine} restaurant", "find me {cuisine} food"),
    "restaurant_habit": ("find me {cuisine} food", "find an {cuisine} restaurant"),
    "game": ("put the {team} game on",),
    "game_habit": ("put the {team} game on",),
}
# What a person says first, before any failure: short and vague where a taste should fill in the rest.
FIRST: dict[str, tuple[str, ...]] = {
    "play_music": ("play music", "play some music", "put on some music"),
    "restaurant_habit": ("find a restaurant", "where can we eat tonight", "find me somewhere to eat"),
    "game_habit": ("put the game on", "turn on the game"),
}
IDIOSYNCRATIC: dict[str, tuple[str, ...]] = {
    "device_on": ("fire up the {device}", "i need the {device} on", "get the {device} going", "{device} on now",
                  "power up the {device}", "could you do the {device}"),
    "device_off": ("kill the {device}", "{device} off now", "shut the {device} down", "cut the {device}",
                   "no more {device}", "power down the {device}"),
    "cover_open": ("pull up the {device}", "{device} up please", "roll up the {device}"),
    "cover_close": ("pull down the {device}", "{device} down please", "roll down the {device}"),
    "lights_on": ("lights on in the {area} please", "light up the {area}", "it's too dark in the {area}",
                  "{area} lights up", "make the {area} bright"),
    "lights_off": ("kill the lights in the {area}", "{area} lights out", "lights out in the {area}",
                   "no more light in the {area}", "darken the {area}"),
    "lights_dim": ("dim the {area} lights to {pct}%", "make the {area} dimmer", "{area} lights down a bit",
                   "dim the lights in the {area}"),
    "lights_up": ("brighten the {area}", "brighter lights in the {area}", "{area} lights up to {pct}%"),
    "set_temperature": ("make it {temp} degrees in here", "warm it up to {temp}", "bump the heat to {temp}",
                        "i want it {temp} degrees", "heat to {temp}"),
    "get_temperature": ("how cold is it inside", "is it warm in here", "how warm is the house"),
    "vacuum": ("get the {device} cleaning", "run the {device}", "clean up the {area}", "vacuum the {area}"),
    "coffee": ("coffee please", "i need my coffee", "get the coffee going", "caffeine time"),
    "preheat": ("get the oven hot to {temp}", "oven to {temp} please", "warm up the oven to {temp}",
                "heat the oven {temp}"),
    "weather": ("do i need an umbrella", "how's it looking outside", "what's it doing out there",
                "should i take a jacket"),
    "weather_in": ("is it gonna rain over in {city}", "{city} weather", "how's {city} looking",
                   "forecast {city}"),
    "play_genre": ("i'm in the mood for {genre}", "throw on some {genre}", "let's hear some {genre}",
                   "{genre} please", "some {genre} tunes"),
    "play_music": ("music please", "something to listen to", "i need some tunes", "give me some music"),
    "volume_up": ("louder", "crank it up", "i can't hear it", "pump up the volume"),
    "volume_down": ("quieter please", "too loud", "turn it down a notch", "softer"),
    "mute": ("shush", "silence", "be quiet"),
    "pause": ("hold on stop the music", "hold the music", "stop playing"),
    "next": ("not this one", "play something else", "skip it"),
    "timer": ("remind me in {minutes} minutes", "{minutes} minute timer", "count down {minutes} minutes",
              "timer {minutes} minutes"),
    "shopping": ("put {item} on the list", "we need {item}", "remember to buy {item}", "we're out of {item}"),
    "time": ("what's the time", "time please", "how late is it"),
    "restaurant": ("i'm craving {cuisine}", "{cuisine} places nearby", "where's good {cuisine} around here"),
    "restaurant_habit": ("i'm hungry what's near", "somewhere to eat", "dinner ideas"),
    "game": ("is the {team} game on", "{team} game please", "show me the {team}"),
    "game_habit": ("game on", "show me the game", "what's the score"),
}  # fmt: skip
SLURP_KIND = {"device_on": "device_on", "device_off": "device_off", "lights_on": "lights_on",
              "lights_off": "lights_off", "lights_dim": "lights_dim", "lights_up": "lights_up", "coffee": "coffee",
              "vacuum": "vacuum", "weather": "weather", "play_genre": "play_genre", "volume_up": "volume_up",
              "volume_down": "volume_down", "mute": "mute", "time": "time", "impossible": "impossible",
              "chatter": "chatter"}  # fmt: skip
NEGATIVES = ("no that's wrong", "no", "that's not what i asked", "wrong", "no that's not it", "ugh no")


@cache
def slurp_templates() -> dict[str, tuple[str, ...]]:
    """Real SLURP wordings per goal kind; weather templates with a place go to ``weather_in``."""
    out: dict[str, list[str]] = {}
    for line in PHRASINGS_PATH.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        kind = SLURP_KIND.get(row["kind"])
        if kind is None:
            continue
        if kind == "weather" and "{city}" in row["template"]:
            kind = "weather_in"
        if kind == "play_genre" and "{genre}" not in row["template"]:
            kind = "play_music"
        out.setdefault(kind, []).append(row["template"])
    return {k: tuple(v) for k, v in out.items()}


def pool(kind: str) -> tuple[str, ...]:
    """Every non-canonical wording of a kind: the shared idiosyncratic ones first, then SLURP's."""
    if kind == "impossible":
        return IMPOSSIBLE + slurp_templates().get("impossible", ())
    if kind == "chatter":
        return CHATTER + slurp_templates().get("chatter", ())
    return IDIOSYNCRATIC.get(kind, ()) + slurp_templates().get(kind, ())


@cache
def zipf(n: int, exponent: float = 1.5) -> tuple[float, ...]:
    """Weights for a pool's wordings by rank: the first few are said by many people, the tail by few."""
    return tuple(1.0 / (rank + 1) ** exponent for rank in range(n))


def first_wordings(kind: str) -> tuple[str, ...]:
    return FIRST.get(kind, CANONICAL.get(kind, ()))


def render(template: str, goal: Goal, naming: dict[str, str] | None = None) -> str:
    """Fill ``{slot}`` from the goal's words (a person's private ``naming`` wins); unknown slots stay literal."""
    if not slots_of(template):
        return template
    words = {**goal.words, **naming} if naming else goal.words
    return _SLOT.sub(lambda m: words.get(m.group(1), m.group(0)), template)


def fits(template: str, goal: Goal) -> bool:
    """A template can express the goal if the goal has a word for each of its slots."""
    return all(s in goal.words for s in slots_of(template))


@cache
def slots_of(template: str) -> tuple[str, ...]:
    """A template's slot names (templates are few and matched against many goals: parsed once)."""
    return tuple(_SLOT.findall(template))


def rephrase(goal: Goal, previous: str, rng: random.Random, *, official: bool) -> str:
    """A working wording after a failure: a canonical template, not the one just said; with ``official`` the
    home's own device/area names replace a private one, and a town gets its state spelled out."""
    naming = dict(goal.official) if official else {}
    if official and "city_full" in goal.words:
        naming["city"] = goal.words["city_full"]
    options = [render(t, goal, naming) for t in CANONICAL.get(goal.kind, ()) if fits(t, goal)]
    fresh = [o for o in options if o != previous]
    if fresh:  # the most standard wording is the most common fallback
        return rng.choices(fresh, zipf(len(fresh)))[0]
    return options[0] if options else previous


def random_draw(kind: str, goal: Goal, rng: random.Random) -> str:
    """A one-off wording for a goal: canonical most of the time, else from the shared pool."""
    if kind in ("impossible", "chatter"):
        return rng.choice(pool(kind))
    odd = [t for t in pool(kind) if fits(t, goal)] if rng.random() < 0.15 else []
    if odd:
        return rng.choices(odd, zipf(len(odd)))[0]
    candidates = [t for t in first_wordings(kind) if fits(t, goal)]
    return rng.choice(candidates) if candidates else ""
