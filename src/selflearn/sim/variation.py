"""Realistic phrasing: the long tail of how people word a request, from systematic variation of a few bases.

Real wordings form a long tail: most are said by few people. In the ``realistic`` setting a person's wording
combines a base (the NLU's own templates, the shared odd pool, real SLURP wordings, or an indirect request: "it's
too dark in the kitchen", "i can't hear anything") with a personal :class:`Style` kept for life: an opener ("um",
"could you"), a closer ("please", "thanks"), preferred synonyms for actions and device words ("switch on", "lamp"),
a word order ("turn the lamp on", "in the kitchen turn off the lights"), and a rate of disfluencies ("turn turn
off the lights") on single utterances. Bases, styles and disfluencies multiply, so a learner keeps meeting
wordings it has never seen. The ``templates`` setting (the default) keeps the narrower older world.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

from selflearn.sim.goals import Goal
from selflearn.sim.phrasing import CANONICAL, IDIOSYNCRATIC, first_wordings, fits, render, slurp_templates, zipf

Phrasing = Literal["templates", "realistic"]

# Requests that name the problem, not the action; each keeps every slot the goal needs.
INDIRECT: dict[str, tuple[str, ...]] = {
    "device_on": ("i need the {device}", "can i have the {device}", "the {device} should be on"),
    "device_off": ("the {device} is still on", "i'm done with the {device}", "nobody needs the {device} now"),
    "cover_open": ("i want the {device} open", "can we have the {device} up"),
    "cover_close": ("i want the {device} closed", "the sun's in my eyes close the {device}"),
    "lights_on": ("it's too dark in the {area}", "i can't see a thing in the {area}", "the {area} is so dark",
                  "can we get some light in the {area}"),
    "lights_off": ("nobody's in the {area} anymore", "the {area} lights are still on",
                   "we don't need the lights in the {area}"),
    "lights_dim": ("it's too bright in the {area}", "the {area} is way too bright"),
    "lights_up": ("it's a bit dim in the {area}", "i can barely see in the {area}"),
    "set_temperature": ("i'm cold make it {temp} degrees", "it's too hot in here set it to {temp}",
                        "i'd like it at {temp} degrees"),
    "get_temperature": ("is it cold in here", "do i need a sweater inside", "how hot is it in the house"),
    "vacuum": ("the {area} floor is dirty", "the {area} needs a clean"),
    "coffee": ("i could really use a coffee", "i need caffeine", "is there any coffee"),
    "preheat": ("i'm about to bake at {temp}", "the oven needs to be at {temp}"),
    "weather": ("should i bring a coat", "is it nice out", "will i need sunglasses"),
    "weather_in": ("what should i pack for {city}", "is it raining in {city}"),
    "play_genre": ("i feel like some {genre}", "how about some {genre}"),
    "play_music": ("it's too quiet in here", "some background music would be nice"),
    "volume_up": ("i can't hear anything", "i can barely hear it", "it's too quiet"),
    "volume_down": ("that's way too loud", "it's too loud in here", "my ears hurt"),
    "mute": ("i'm on the phone", "the baby's sleeping"),
    "pause": ("hang on a sec", "wait stop"),
    "next": ("i don't like this song", "i'm tired of this one"),
    "timer": ("let me know when {minutes} minutes are up", "wake me in {minutes} minutes"),
    "shopping": ("we're running low on {item}", "don't let me forget {item}"),
    "time": ("am i running late", "what time do we have"),
    "restaurant": ("what's a good {cuisine} place", "i could go for {cuisine}"),
    "restaurant_habit": ("what should we have for dinner", "i'm starving"),
    "game": ("when do the {team} play", "what channel are the {team} on"),
    "game_habit": ("is the game on yet", "i want to watch the game"),
}  # fmt: skip
# Template phrases and what some people say instead (outside slots; the first match per phrase wins).
ACTION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "turn on": ("switch on", "put on", "flip on"),
    "turn off": ("switch off", "shut off", "flip off"),
    "turn up": ("crank up", "bump up"),
    "turn down": ("bring down", "lower"),
    "lights": ("lamps", "light"),
    "start": ("run", "kick off"),
    "play": ("put on", "throw on"),
    "what's": ("what is",),
    "what is": ("what's",),
    "set": ("change", "put"),
    "find": ("look for", "search for"),
    "music": ("tunes", "songs"),
    "temperature": ("temp",),
    "volume": ("sound",),
    "open": ("raise",),
    "close": ("lower", "shut"),
    "make": ("brew", "fix"),
}
# Words in a device's name and what some people call them instead.
DEVICE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "light": ("lamp", "lights"),
    "lamp": ("light",),
    "lights": ("lamps",),
    "tv": ("television", "telly"),
    "television": ("tv",),
    "blinds": ("shades",),
    "curtains": ("drapes",),
    "shades": ("blinds",),
    "fan": ("ceiling fan",),
    "heater": ("radiator",),
    "machine": ("maker",),
    "maker": ("machine",),
    "vacuum": ("hoover",),
}
# (opener, weight): politeness openers fit only commands; fillers fit anything.
POLITE_OPENERS = (("could you", 8), ("can you", 8), ("please", 6), ("would you", 3), ("hey can you", 3),
                  ("could you please", 3), ("go ahead and", 2), ("i want you to", 2),
                  ("i'd like you to", 1))  # fmt: skip
FILLERS = (("um", 6), ("uh", 4), ("hey", 4), ("okay", 3), ("so", 2), ("oh", 1), ("alright", 1))
CLOSERS = (("please", 8), ("thanks", 5), ("thank you", 3), ("for me", 3), ("now", 2), ("real quick", 1),
           ("when you get a chance", 1), ("if you can", 1))  # fmt: skip
_COMMAND_TEXT = """turn switch set open close start play make brew preheat add find put dim brighten pause mute skip
    raise lower shut run kick flip crank bump bring throw change look search fire kill get power pull roll light
    darken warm heat let show give remind count"""
COMMAND_VERBS = frozenset(_COMMAND_TEXT.split())
# Moves that keep a command's meaning: a particle after its object, a place to the front.
_PARTICLE_LATE = re.compile(r"^(turn|switch|put|flip|shut) (on|off|up|down) the (\S+(?: \S+)?)$")
_PLACE_FIRST = re.compile(r"^(.+?) in the (\{area\})$")


@dataclass(frozen=True)
class Style:
    """How one person decorates what they say, drawn once and kept for life."""

    opener: str
    """A filler or polite opener said before a command, or nothing."""
    closer: str
    """Said after a command ("please", "thanks", ...), or nothing."""
    synonyms: dict[str, str] = field(default_factory=dict)
    """Template phrase -> this person's phrase."""
    device_words: dict[str, str] = field(default_factory=dict)
    """Device-name word -> this person's word."""
    reorder: bool = False
    """Moves particles after the object and places to the front."""
    disfluency: float = 0.0
    """P(an utterance has a hesitation, a repeated word or a restart)."""


def draw_style(rng: random.Random) -> Style:
    """A person's style: most people are plain; some are polite, hesitant, or have their own words."""
    opener = _weighted(rng, (("", 60), *FILLERS, *POLITE_OPENERS))
    closer = _weighted(rng, (("", 65), *CLOSERS))
    synonyms = {k: rng.choice(v) for k, v in ACTION_SYNONYMS.items() if rng.random() < 0.3}
    device = {k: rng.choice(v) for k, v in DEVICE_SYNONYMS.items() if rng.random() < 0.3}
    return Style(opener, closer, synonyms, device, reorder=rng.random() < 0.3, disfluency=rng.uniform(0.0, 0.15))


def _weighted(rng: random.Random, options: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([o for o, _ in options], [w for _, w in options])[0]


@cache
def bases(kind: str) -> tuple[str, ...]:
    """The non-canonical wordings of a kind (real SLURP, indirect, the shared odd pool) in a fixed, kind-seeded
    order: which of them many people share is arbitrary, but the same in every run."""
    pool = [*slurp_templates().get(kind, ()), *INDIRECT.get(kind, ()), *IDIOSYNCRATIC.get(kind, ())]
    random.Random(f"bases:{kind}").shuffle(pool)
    return tuple(dict.fromkeys(pool))


def draw_template(kind: str, goal: Goal | None, rng: random.Random) -> str | None:
    """A base for ``kind`` (fitting ``goal`` when given): a standard wording 40 % of the time, else a long-tailed
    (Zipf 1.1) pick among the bases."""
    first = [t for t in (*first_wordings(kind), *CANONICAL.get(kind, ())) if goal is None or fits(t, goal)]
    odd = [t for t in bases(kind) if goal is None or fits(t, goal)]
    if odd and (not first or rng.random() >= 0.4):
        return rng.choices(odd, zipf(len(odd), 1.1))[0]
    return rng.choice(first) if first else None


@cache
def _phrases(keys: frozenset[str]) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True)) + r")\b")


def _substitute(text: str, table: dict[str, str]) -> str:
    """Replace whole-word phrases of ``table`` once each, longest first, outside ``{slots}``."""
    if not table:
        return text
    pattern = _phrases(frozenset(table))
    parts = re.split(r"(\{\w+\})", text)
    return "".join(p if p.startswith("{") else pattern.sub(lambda m: table[m.group(1)], p) for p in parts)


def styled(template: str, style: Style) -> str:
    """The template in this person's words and word order (slots untouched)."""
    text = _substitute(template, style.synonyms)
    if style.reorder:
        text = _PLACE_FIRST.sub(r"in the \2 \1", _PARTICLE_LATE.sub(r"\1 the \3 \2", text))
    return text


def device_naming(goal: Goal, style: Style) -> dict[str, str]:
    """This person's words for the goal's device ("desk lamp" -> "desk light"); empty if they use the home's."""
    said = goal.words.get("device")
    if said is None:
        return {}
    mine = _substitute(said, style.device_words)
    return {"device": mine} if mine != said else {}


def say(template: str, goal: Goal, naming: dict[str, str], style: Style, rng: random.Random) -> str:
    """One utterance of ``template`` for ``goal`` as this person says it."""
    words = styled(template, style)
    front = "in the {area} " if words.startswith("in the {area} ") else ""
    rest = words[len(front) :]
    filler = style.opener in dict(FILLERS)
    if style.opener and not rest.startswith(f"{style.opener} "):
        if filler:  # a hesitation comes first; a polite opener goes before the verb of a command
            words = f"{style.opener} {words}"
        elif rest.split(" ", 1)[0] in COMMAND_VERBS:
            words = f"{front}{style.opener} {rest}"
    text = render(words, goal, naming)
    if style.closer and not text.endswith(f" {style.closer}"):
        text = f"{text} {style.closer}"
    if rng.random() < style.disfluency:
        text = disfluent(text, rng)
    return text


def disfluent(text: str, rng: random.Random) -> str:
    """A hesitation after the first word, the first word repeated, or a restart of the first two."""
    words = text.split()
    if len(words) < 3:
        return f"{rng.choice(('um', 'uh'))} {text}"
    how = rng.randrange(3)
    if how == 0:
        return " ".join([words[0], rng.choice(("um", "uh", "like")), *words[1:]])
    if how == 1:
        return " ".join([words[0], *words])
    return " ".join([*words[:2], *words])
