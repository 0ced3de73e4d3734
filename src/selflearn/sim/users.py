"""Simulated people: stable tastes, habitual wordings, private device names, patience.

A :class:`SimUser` is drawn once per person and seed and then kept for every day, because learning from
interactions depends on people being consistent: the same person says the same (possibly unparseable) thing every
morning, calls the ceiling light "big light" every time, and likes jazz even if the home file never said so.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from selflearn.home import Home, Person
from selflearn.sim.goals import Goal
from selflearn.sim.names import CITIES, CUISINES, GENRES, PERSONAL_ALIASES, TEAMS
from selflearn.sim.phrasing import CANONICAL, first_wordings, fits, pool, random_draw, render, zipf
from selflearn.sim.variation import Phrasing, Style, device_naming, draw_style, draw_template, say


@dataclass
class SimUser:
    person: Person
    """The person as the home file describes them."""
    home_id: str
    """Their home."""
    endpoints: list[str]
    """Endpoint ids they talk to."""
    tastes: dict[str, str]
    """Taste name -> value (music genre, team, ...)."""
    habitual: dict[str, str]
    """Goal kind -> the template this person nearly always uses."""
    private_names: dict[str, str]
    """Device id -> a name only this person uses."""
    patience: int
    """Failed attempts they tolerate before giving up."""
    rephrase_bias: float
    """P(rephrasing rather than repeating) after a failure."""
    style: Style | None = None
    """Realistic phrasing: this person's openers, synonyms, word order (None: templates)."""

    @property
    def id(self) -> str:
        return self.person.id

    def wording(self, goal: Goal, rng: random.Random, *, habitual: float) -> tuple[str, dict[str, str]]:
        """What this person says first for ``goal``, and the private names used in it."""
        naming: dict[str, str] = {}
        device = goal.slots.get("name")
        if isinstance(device, str) and device in self.private_names and "device" in goal.words:
            naming["device"] = self.private_names[device]
        if goal.text is not None:
            return goal.text, naming
        if self.style is not None:
            naming = {**device_naming(goal, self.style), **naming}
            template = self.habitual.get(goal.kind)
            if template is None or not fits(template, goal) or rng.random() >= habitual:
                template = draw_template(goal.kind, goal, rng)
            return (say(template, goal, naming, self.style, rng) if template else ""), naming
        template = self.habitual.get(goal.kind)
        if template is None or not fits(template, goal) or rng.random() >= habitual:
            template = random_draw(goal.kind, goal, rng)
        return render(template, goal, naming), naming


def _habitual_template(kind: str, rng: random.Random, idiosyncratic: float) -> str | None:
    """A Zipf-like pick from the shared pool, so a few odd wordings are habitual for many people."""
    shared = pool(kind)
    if shared and rng.random() < idiosyncratic:
        return rng.choices(shared, zipf(len(shared)))[0]
    first = first_wordings(kind)
    return rng.choice(first) if first else None


def make_user(
    home: Home,
    person: Person,
    seed: int,
    *,
    idiosyncratic: float,
    private_alias: float,
    phrasing: Phrasing = "templates",
) -> SimUser:
    """A person's lasting traits. ``realistic`` phrasing draws the wordings and a style from a stream of its own,
    so tastes, private names and patience are the same in both settings."""
    rng = random.Random(f"user:{seed}:{home.id}:{person.id}")
    habits = person.habits
    tastes = {
        "music_genre": habits.get("music_genre") or rng.choice(GENRES),
        "team": habits.get("team") or rng.choice(TEAMS),
        "cuisine": habits.get("cuisine") or rng.choice(CUISINES),
        "city": person.city or home.city or ", ".join(rng.choice(CITIES)),
    }
    habitual = {}
    for kind in CANONICAL:
        template = _habitual_template(kind, rng, idiosyncratic)
        if template is not None:
            habitual[kind] = template
    private = {}
    for d in home.devices:
        aliases = PERSONAL_ALIASES.get(d.domain)
        if aliases and rng.random() < private_alias:
            private[d.id] = rng.choice(aliases)
    endpoints = list(person.endpoints) or [e.id for e in home.endpoints]
    style = None
    if phrasing == "realistic":
        own = random.Random(f"style:{seed}:{home.id}:{person.id}")
        style = draw_style(own)
        habitual = {k: t for k in CANONICAL if (t := draw_template(k, None, own)) is not None}
    return SimUser(
        person=person,
        home_id=home.id,
        endpoints=endpoints,
        tastes=tastes,
        habitual=habitual,
        private_names=private,
        patience=rng.choice((2, 3, 3, 4)),
        rephrase_bias=rng.uniform(0.55, 0.9),
        style=style,
    )
