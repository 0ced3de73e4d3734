import json
import random
from pathlib import Path

import pytest

from selflearn.home import Home
from selflearn.schema import Gold, read_parquet
from selflearn.sim import DayLog, SimConfig, generate_homes
from selflearn.sim.goals import GoalFactory
from selflearn.sim.run import defect_stats, simulate, wording_stats
from selflearn.sim.users import make_user
from selflearn.sim.variation import INDIRECT, Style, bases, device_naming, disfluent, draw_style, say, styled


@pytest.fixture(scope="module")
def homes() -> list[Home]:
    return generate_homes(12, seed=21)


@pytest.fixture(scope="module")
def runs(homes: list[Home]) -> dict[str, list[DayLog]]:
    return {p: simulate(homes, days=2, seed=21, config=SimConfig(phrasing=p)) for p in ("templates", "realistic")}


def _stats(logs: list[DayLog]) -> dict[str, float]:
    turns = [t for log in logs for t in log.turns]
    gold = [g for log in logs for g in log.gold]
    return {**defect_stats(gold), **wording_stats(turns, gold)}


def test_default_is_the_template_world() -> None:
    assert SimConfig().phrasing == "templates"
    home = generate_homes(1, seed=2)[0]
    plain = make_user(home, home.people[0], 2, idiosyncratic=0.15, private_alias=0.25)
    real = make_user(home, home.people[0], 2, idiosyncratic=0.15, private_alias=0.25, phrasing="realistic")
    assert plain.style is None and real.style is not None
    # the same person in both worlds: only the wordings differ
    assert (plain.tastes, plain.private_names, plain.patience) == (real.tastes, real.private_names, real.patience)


def test_realistic_first_wordings_have_a_long_tail(runs: dict[str, list[DayLog]]) -> None:
    plain, real = _stats(runs["templates"]), _stats(runs["realistic"])
    assert real["wordings.first_attempts"] == plain["wordings.first_attempts"]  # the same requests, worded anew
    assert real["wordings.distinct_per_intent"] > 1.5 * plain["wordings.distinct_per_intent"]
    assert real["wordings.said_by_le2_people_share"] > 0.9
    assert real["wordings.first_attempts_rare_share"] > plain["wordings.first_attempts_rare_share"] + 0.2


def test_people_keep_their_habits_and_fall_back_to_wordings_that_work(runs: dict[str, list[DayLog]]) -> None:
    gold = [g for log in runs["realistic"] for g in log.gold]
    turns = {t.turn_id: t for log in runs["realistic"] for t in log.turns}
    firsts: dict[str, list[str]] = {}
    for g in gold:
        if g.true_intent and g.is_rephrase_of is None:
            firsts.setdefault(turns[g.turn_id].user_id, []).append(g.true_text)
    repeated = sum(len(ws) - len(set(ws)) for ws in firsts.values())
    assert repeated > 50  # a person says the same thing again on other days
    retries = [g for g in gold if g.is_rephrase_of is not None]
    assert retries and sum(g.failure_point == "correct" for g in retries) / len(retries) > 0.5


def test_style_changes_words_and_order_but_never_slots() -> None:
    style = Style("could you", "please", {"turn off": "switch off", "lights": "lamps"}, {"light": "lamp"}, True)
    assert styled("turn off the lights in the {area}", style) == "in the {area} switch off the lamps"
    assert styled("turn off the {device}", style) == "switch the {device} off"
    assert styled("{lights} off", Style("", "", {"lights": "lamps"})) == "{lights} off"
    home = generate_homes(1, seed=4)[0]
    factory = GoalFactory(home)
    goal = factory.make("lights_off", home.people[0], {}, home.endpoints[0].area, random.Random(0))
    text = say("turn off the lights in the {area}", goal, {}, style, random.Random(0))
    assert text == f"in the {goal.words['area']} could you switch off the lamps please"
    question = say("what time is it", goal, {}, style, random.Random(0))
    assert question == "what time is it please"  # a polite opener only before a command
    device = factory.make("device_on", home.people[0], {}, home.endpoints[0].area, random.Random(1))
    named = device_naming(device, Style("", "", device_words={w: "gizmo" for w in device.words["device"].split()}))
    assert named["device"] != device.words["device"]


def test_styles_bases_and_disfluencies_vary() -> None:
    rng = random.Random(0)
    styles = [draw_style(rng) for _ in range(200)]
    assert 0.2 < sum(bool(s.opener) for s in styles) / 200 < 0.6
    assert sum(bool(s.synonyms) for s in styles) > 150
    assert set(INDIRECT["lights_on"]) <= set(bases("lights_on"))
    assert bases("lights_on") == bases("lights_on") and len(bases("volume_up")) >= 6
    said = {disfluent("turn off the lights", random.Random(i)) for i in range(30)}
    assert len(said) > 3 and all(s.endswith("the lights") for s in said)


def test_simulate_command_takes_the_phrasing(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from selflearn.cli.main import app

    said = {}
    for phrasing in ("templates", "realistic"):
        out = tmp_path / phrasing
        args = ["simulate", "--homes", "3", "--seed", "5", "--out", str(out), "--no-store", "--phrasing", phrasing]
        result = CliRunner().invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["phrasing"] == phrasing
        said[phrasing] = {g.true_text for g in read_parquet(out / "gold.parquet", Gold)}
    assert len(said["realistic"] - said["templates"]) > len(said["realistic"]) / 2
    bad = CliRunner().invoke(app, ["simulate", "--no-store", "--out", str(tmp_path / "x"), "--phrasing", "poetry"])
    assert bad.exit_code != 0 and not (tmp_path / "x").exists()
