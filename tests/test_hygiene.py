from __future__ import annotations

import pytest

from selflearn.home import Area, Device, Endpoint, Home
from selflearn.learners.hygiene import Hygiene


@pytest.fixture(scope="module")
def hygiene() -> Hygiene:
    home = Home(
        id="h",
        name="h",
        areas=[Area(id="bedroom", name="Bedroom", aliases=["master bedroom"]), Area(id="garage", name="Garage")],
        devices=[
            Device(id="cover.garage", name="Garage Door", domain="cover", area="garage"),
            Device(id="light.lava", name="Lava Glow", domain="light", area="bedroom"),
        ],
        endpoints=[Endpoint(id="ep", type="speaker", area="bedroom")],
    )
    return Hygiene.for_homes([home])


@pytest.mark.parametrize(
    ("source", "target", "why"),
    [
        ("open the drapes", "open the garage door", "device"),  # both covers to HA, not to the person
        ("set the garage brightness to 20", "open the garage door", "device"),  # a light setting became a door
        ("start", "make coffee", "fragment"),
        ("on", "turn on the lights", "fragment"),
        ("turn it on please", "turn on the tv", "fragment"),
        ("turn off the living room lights", "turn off the lights in the dining room", "area"),
        ("kill the lights in the kitchen", "turn off the lights", "area"),  # the named room dropped
        ("disarm the alarm", "unlock the garage door", "device"),
        ("turn on the lava glow", "open the _cover_", "device"),  # the home's own device name, a placeholder
        ("kill the _light_", "turn off the _cover_", "device"),
    ],
)
def test_rules_that_change_what_or_where_or_start_from_a_fragment(
    hygiene: Hygiene, source: str, target: str, why: str
) -> None:
    assert hygiene.violation(source, target) == why


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("kill the lights in the master bedroom", "switch off the bedroom lights"),  # an alias is the same room
        ("pull up the garage door", "open the garage door"),
        ("pull up the _cover_", "open the _cover_"),
        ("kill the lights in the _area_", "turn off the lights in the _area_"),
        ("get the oven hot to 190", "preheat the oven to 190 degrees"),
        ("set a dimmer for 10 minutes", "set a timer for 10 minutes"),  # the misheard noun names no target device
        ("turn on the big light", "turn on the bedroom light"),  # a person's own name for a lamp in a room
        ("coffee", "brew coffee"),
        ("louder", "turn up the volume"),
    ],
)
def test_rules_that_only_change_how_it_was_said_pass(hygiene: Hygiene, source: str, target: str) -> None:
    assert hygiene.violation(source, target) is None


def test_nlu_readings_count_where_known(hygiene: Hygiene) -> None:
    """The intent family and the domain slot name a device kind the words may not."""
    assert hygiene.violation("brighter in here", "open the shades", source_intent="HassLightSet") == "device"
    slots = '{"domain": "fan"}'
    assert hygiene.violation("more air", "turn on the heating", source_slots=slots) == "device"
    assert hygiene.violation("more air", "turn on the heating", source_slots="domain") is None  # a pattern's names


@pytest.mark.parametrize(
    ("target", "intent", "sensitive"),
    [
        ("unlock the front door", "HassTurnOff", True),
        ("open the garage door", "HassTurnOn", True),
        ("close the _cover_", "HassTurnOff", True),
        ("disarm the security system", None, True),
        ("set the temperature to 20 degrees", "HassClimateSetTemperature", True),
        ("what is the temperature", "HassClimateGetTemperature", False),  # a question acts on nothing
        ("make coffee", "StartProgram", False),
        ("turn on the kitchen light", "HassTurnOn", False),
    ],
)
def test_sensitive_targets(hygiene: Hygiene, target: str, intent: str | None, sensitive: bool) -> None:
    assert hygiene.sensitive(target, intent) is sensitive
