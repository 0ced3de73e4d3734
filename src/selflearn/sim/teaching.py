"""Simulated people who teach: after a failure, what a person would say to teach the assistant what they meant.

A :class:`~selflearn.sim.simulation.TeachingBehaviour` for ``Simulation(..., teaching=TeachingUsers())``. The
lesson follows from why the request failed, as far as the person can tell from the outside:

* a taste left to the assistant ("put the game on" got the wrong team) -> "I'm a Warriors fan", "I like Thai
  food", "my favourite music is jazz";
* a private device name the assistant did not know -> "when I say big light I mean the kitchen light";
* a town the assistant placed wrong -> "Wilkerson is the one in California";
* the assistant just offered "Would you like to teach me what you meant?" -> "yes <a wording that works>";
* otherwise: their own wording was not understood -> "when I say <their words> I mean <a wording that works>", or
  simply "no, I meant <a wording that works>" (a correction: it rewrites what the assistant heard, next time).

Lessons go through the same ASR noise as every utterance, so some arrive garbled: the teacher must ask or ignore.
"""

from __future__ import annotations

import random

from selflearn.schema import Turn
from selflearn.sim.goals import Goal
from selflearn.sim.names import TEAM_SAID
from selflearn.sim.phrasing import CANONICAL, fits, render
from selflearn.sim.users import SimUser
from selflearn.teach.teacher import TEACH_OFFER
from selflearn.text import normalize

TEAM_LESSONS = ("i'm a {team} fan", "i'm a big {team} fan", "my favourite team is the {team}", "i support the {team}")
CUISINE_LESSONS = ("i like {cuisine} food", "i love {cuisine} food", "my favourite food is {cuisine}")
GENRE_LESSONS = ("my favourite music is {genre}", "i like {genre} music", "i love listening to {genre}")
NAME_LESSONS = ("when i say {alias} i mean the {device}", "the {alias} is the {device}")
PHRASE_LESSON = "when i say {said} i mean {meant}"
CORRECTION_LESSONS = ("no i meant {meant}", "i meant {meant}")


class TeachingUsers:
    """What a simulated person says to teach after ``turn`` failed ``goal``; None when they have nothing to teach."""

    def utterance(self, goal: Goal, user: SimUser, turn: Turn, rng: random.Random) -> str | None:
        if goal.impossible or not goal.addressed:
            return None
        heard = normalize(turn.asr_text)
        working = [render(t, goal, dict(goal.official)) for t in CANONICAL.get(goal.kind, ()) if fits(t, goal)]
        working = [w for w in working if normalize(w) != heard]
        if turn.response_text.endswith(TEACH_OFFER) and working:
            return f"yes {working[0]}"  # the assistant offered to learn what they meant
        if "team" in goal.implicit:
            team = str(goal.slots["team"])
            return rng.choice(TEAM_LESSONS).format(team=TEAM_SAID.get(team, team.lower()))
        if "cuisine" in goal.implicit:
            return rng.choice(CUISINE_LESSONS).format(cuisine=str(goal.slots["cuisine"]).lower())
        if "genre" in goal.implicit:
            return rng.choice(GENRE_LESSONS).format(genre=goal.slots["genre"])
        device = goal.slots.get("name")
        alias = user.private_names.get(device) if isinstance(device, str) else None
        if alias is not None and "device" in goal.official and alias in turn.asr_text:
            return rng.choice(NAME_LESSONS).format(alias=alias, device=goal.official["device"])
        if goal.kind == "weather_in" and "," in str(goal.slots.get("city", "")):
            town, _, state = str(goal.slots["city"]).partition(",")
            return f"{town.strip().lower()} is the one in {state.strip().lower()}"
        if not working:
            return None
        template = user.habitual.get(goal.kind)
        if turn.result_status == "no_match" and template is not None and fits(template, goal) and rng.random() < 0.5:
            said = render(template, goal, {})
            if normalize(said) != normalize(working[0]):
                return PHRASE_LESSON.format(said=said, meant=working[0])
        return rng.choice(CORRECTION_LESSONS).format(meant=working[0])
