"""Every seed example of the context issue is a named scenario here, plus the scenario library on an unseen home."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from selflearn.eval import harness as evaluate
from selflearn.home import Home, dump_home, load_home, shipped_homes
from selflearn.runtime.runtime import Interpretation, Runtime
from selflearn.schema import Preference
from selflearn.sim.scenarios import SCENARIOS, at, cases

HOMES = {h.id: h for h in shipped_homes()}
MAPLE = HOMES["maple_house"]


def ask(
    text: str,
    ep: str,
    *,
    home: Home = MAPLE,
    user: str = "nobody",
    when: datetime | None = None,
    state: dict | None = None,
    prefs: list[Preference] | None = None,
    context: bool = True,
) -> Interpretation:
    rt = Runtime(home, context=context, preferences=lambda u: prefs or [])
    for device, values in (state or {}).items():
        rt.state[device].update(values)
    return rt.interpret(text, user_id=user, endpoint_id=ep, now=when or at(home, 15))


def top(out: Interpretation) -> tuple[str, dict]:
    return out.hypotheses[0].intent, out.hypotheses[0].slots


def pref(kind: str, value: str, key: str = "") -> Preference:
    return Preference(user_id="nobody", kind=kind, key=key, value=value, ts=datetime(2026, 1, 1, tzinfo=UTC))  # type: ignore[arg-type]


def test_oven_on_makes_temperature_the_oven() -> None:
    on = ask("what is the temperature", "ep.kitchen_speaker", state={"oven.kitchen": {"power": True}})
    off = ask("what is the temperature", "ep.kitchen_speaker")
    assert top(on)[1]["name"] == "oven.kitchen"
    assert top(off)[1]["name"] == "climate.thermostat"
    assert "device_on" in on.hypotheses[0].features


def test_screen_plays_the_movie_speaker_the_audiobook() -> None:
    assert top(ask("play hunger games", "ep.living_screen"))[1]["media_type"] == "movie"
    assert top(ask("play hunger games", "ep.bedroom_speaker"))[1]["media_type"] == "audiobook"


def test_jazz_listener_gets_jazz() -> None:
    assert top(ask("play music", "ep.kitchen_speaker", user="maple.ana"))[1]["genre"] == "jazz"
    assert "genre" not in top(ask("play music", "ep.kitchen_speaker", user="maple.ana", context=False))[1]


def test_morning_start_is_the_coffee_maker_evening_the_oven() -> None:
    assert top(ask("start brewing", "ep.kitchen_speaker", when=at(MAPLE, 7)))[1]["name"] == "coffee_maker.kitchen"
    assert top(ask("start it", "ep.kitchen_speaker", when=at(MAPLE, 7)))[1]["name"] == "coffee_maker.kitchen"
    assert top(ask("start it", "ep.kitchen_speaker", when=at(MAPLE, 19)))[1]["name"] == "oven.kitchen"


def test_routine_time_counts_for_the_person_who_has_it() -> None:
    out = ask("start it", "ep.kitchen_speaker", user="maple.ana", when=at(MAPLE, 6, 40))
    assert "routine" in out.hypotheses[0].features


def test_lights_are_the_speakers_room() -> None:
    out = ask("turn on the lights", "ep.bedroom_speaker")
    assert out.turn.resolved_entities["devices"] == ["light.bedroom_lamp"]
    assert ask("turn on the lights", "ep.bedroom_speaker", context=False).turn.result_status != "success"


def test_taught_team_cuisine_genre_place() -> None:
    assert top(ask("turn on the game", "ep.living_screen", prefs=[pref("team", "Boston Celtics")]))[1]["team"] == (
        "Boston Celtics"
    )
    assert top(ask("find a restaurant", "ep.kitchen_speaker", prefs=[pref("cuisine", "Italian")]))[1]["cuisine"] == (
        "Italian"
    )
    assert top(ask("play music", "ep.kitchen_speaker", prefs=[pref("music_genre", "blues")]))[1]["genre"] == "blues"
    place = pref("place", "Wilkerson, California", "wilkerson")
    out = ask("what's the weather in wilkerson", "ep.kitchen_speaker", prefs=[place])
    assert top(out)[1]["city"] == "Wilkerson, California" and "Wilkerson, California" in out.response


def test_taught_preference_beats_habit() -> None:
    out = ask("turn on the game", "ep.living_screen", user="maple.ana")
    assert top(out)[1]["team"] == "Golden State Warriors"
    taught = [Preference(user_id="maple.ana", kind="team", value="Chicago Bulls", ts=datetime(2026, 1, 1, tzinfo=UTC))]
    rt = Runtime(MAPLE, preferences=lambda u: taught)
    again = rt.interpret("turn on the game", user_id="maple.ana", endpoint_id="ep.living_screen", now=at(MAPLE, 15))
    assert top(again)[1]["team"] == "Chicago Bulls"


def test_alias_to_a_shared_name_pins_the_device() -> None:
    oak = HOMES["oak_manor"]
    out = ask(
        "turn on old faithful",
        "ep.primary_speaker",
        home=oak,
        prefs=[pref("device_alias", "light.den_lamp", "old faithful")],
    )
    assert out.turn.resolved_entities["devices"] == ["light.den_lamp"]
    same = ask("turn on the lamp", "ep.kids_speaker", home=oak)
    assert same.turn.resolved_entities["devices"] == ["light.kids_lamp"]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_is_solved_with_context(name: str) -> None:
    rng = random.Random(3)
    built = [c for h in HOMES.values() for _ in range(2) for c in SCENARIOS[name](h, rng)]
    assert built, f"no shipped home hosts {name}"
    assert all(c.correct(c.run(context=True)) for c in built)


def test_scenarios_run_on_an_unseen_home(tmp_path: Path) -> None:
    home = HOMES["city_flat"].model_copy(update={"id": "unseen", "people": []})
    path = tmp_path / "unseen.yaml"
    dump_home(home, path)
    loaded = load_home(path)
    built = cases(loaded, random.Random(0), per_scenario=2)
    assert {c.scenario for c in built} >= {"speaker_location", "screen_vs_speaker_media", "team_preference"}
    report = evaluate.run("context", evaluate.EvalConfig(seed=1, quick=True, home=path))
    assert report.n >= 100
    assert report.metrics["accuracy"] >= 0.95 > report.baseline["accuracy"] + 0.2
