from __future__ import annotations

from datetime import UTC, datetime

from selflearn.home import shipped_homes
from selflearn.runtime.context import Candidate
from selflearn.runtime.execute import World, execute
from selflearn.runtime.resolve import Resolution

HOMES = {h.id: h for h in shipped_homes()}
MAPLE, FLAT = HOMES["maple_house"], HOMES["city_flat"]
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def run(intent: str, slots: dict, devices: list[str], *, home=MAPLE, ep: str = "ep.kitchen_speaker"):  # type: ignore[no-untyped-def]
    world = World(home, {d.id: dict(d.state) for d in home.devices})
    out = execute(Candidate(intent, slots, 0.9), Resolution("ok", devices), world, endpoint=home.endpoint(ep), now=NOW)
    return out, world


def test_power_changes_state() -> None:
    out, world = run("HassTurnOn", {}, ["light.kitchen_ceiling", "cover.living_blinds"])
    assert out.status == "success" and world.state["light.kitchen_ceiling"]["power"] is True
    assert world.state["cover.living_blinds"]["position"] == 100
    out, world = run("HassTurnOff", {}, ["lock.garage_door"])
    assert world.state["lock.garage_door"]["locked"] is False


def test_programs_and_temperature() -> None:
    out, world = run("StartProgram", {"program": "preheat", "temperature": 200}, ["oven.kitchen"])
    assert world.state["oven.kitchen"] == {"power": True, "temperature": 20, "target_temperature": 200}
    out, _ = run("GetDeviceState", {"attribute": "temperature"}, ["climate.thermostat"])
    assert "21 degrees" in out.response


def test_movie_needs_a_screen() -> None:
    out, world = run("PlayMedia", {"title": "dune", "media_type": "movie"}, [], ep="ep.living_screen")
    assert out.status == "success" and world.state["media_player.living_tv"]["playing"] == "movie:dune"
    out, _ = run("PlayMedia", {"title": "dune", "media_type": "movie"}, [], ep="ep.office_speaker")
    assert out.status == "unsupported" and "screen" in out.response


def test_impossible_and_missing() -> None:
    out, _ = run("HassLawnMowerStartMowing", {}, [])
    assert out.status == "unsupported"
    out, _ = run("HassVacuumStart", {}, [], home=FLAT, ep="ep.lounge_screen")
    assert out.status == "unsupported"
    out, _ = run("WatchGame", {}, [], ep="ep.living_screen")
    assert out.status == "no_entity" and "team" in out.response
    world = World(MAPLE, {})
    missing = execute(Candidate("HassTurnOn", {"name": "x"}, 0.5), Resolution("no_entity", missing="the blender"),
                      world, endpoint=MAPLE.endpoint("ep.kitchen_speaker"), now=NOW)  # fmt: skip
    assert missing.status == "no_entity" and "blender" in missing.response


def test_timers_lists_weather() -> None:
    out, world = run("HassStartTimer", {"minutes": 5}, [])
    assert out.status == "success" and len(world.timers) == 1
    out, world = run("HassShoppingListAddItem", {"shopping_list_item": "milk"}, [])
    assert world.lists["shopping list"] == ["milk"]
    a, _ = run("WeatherIn", {"city": "Paris, Texas"}, [])
    b, _ = run("WeatherIn", {"city": "Paris, Texas"}, [])
    assert a.response == b.response and "Paris, Texas" in a.response


def test_thermostat_without_one_in_the_room_sets_one_not_all() -> None:
    oak = HOMES["oak_manor"]
    out, world = run("HassClimateSetTemperature", {"temperature": 23}, [], home=oak, ep="ep.primary_speaker")
    assert out.changed == ["climate.upstairs"] and world.state["climate.main_floor"]["target_temperature"] == 21
