"""selflearn readings as the Home Assistant intents and entities HA's intent handlers expect."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from selflearn.home import find_home
from selflearn.integrations.intents import NEEDS_INTENT_SCRIPT, HaIntent, to_ha
from selflearn.runtime.runtime import Runtime

NOW = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)


def ha(text: str, endpoint: str = "ep.kitchen_speaker") -> list[HaIntent]:
    runtime = Runtime(find_home("maple_house"))
    out = runtime.interpret(text, user_id="maple.household", endpoint_id=endpoint, now=NOW)
    return [to_ha(a.reading, a.resolution, runtime.home) for a in out.acts if a.reading is not None]


@pytest.mark.parametrize(
    ("text", "name", "entities"),
    [
        ("turn on the kitchen light", "HassTurnOn", {"name": "Kitchen Light"}),
        ("turn off the lights", "HassTurnOff", {"domain": "light", "area": "Kitchen"}),  # area id -> area name
        ("open the garage door", "HassTurnOn", {"device_class": "door", "name": "Garage Door"}),
        # a spoken name entity resolution tied to one device goes to HA as that device's exact name
        ("dim the living room lights to 30 percent", "HassLightSet", {"name": "Living Room Light", "brightness": 30}),
        ("play some jazz", "HassMediaSearchAndPlay", {"search_query": "jazz", "media_class": "genre"}),
        ("play music", "HassMediaSearchAndPlay", {"search_query": "music", "media_class": "music"}),
        ("make coffee", "HassTurnOn", {"name": "Coffee Maker"}),  # the coffee maker is a switch in HA
        ("what is the temperature", "HassClimateGetTemperature", {"name": "Thermostat"}),
        ("preheat the oven to 200 degrees", "StartProgram", {"name": "Oven", "program": "preheat", "temperature": 200}),
        ("what's the weather in Springfield", "WeatherIn", {"city": "Springfield"}),
    ],
)
def test_readings_become_ha_intents_with_ha_entity_names(text: str, name: str, entities: dict[str, object]) -> None:
    (got,) = ha(text)
    assert (got.name, got.entities) == (name, entities)


def test_intents_without_ha_handler_are_the_documented_intent_script_ones() -> None:
    assert {"WeatherIn", "StartProgram"} <= set(NEEDS_INTENT_SCRIPT)
    assert not {i.name for i in ha("play some jazz") + ha("make coffee")} & set(NEEDS_INTENT_SCRIPT)


def test_the_docs_have_a_ready_intent_script_for_each_intent_ha_lacks() -> None:
    text = (Path(__file__).parents[1] / "docs" / "home-assistant.md").read_text(encoding="utf-8")
    block = text.split("```yaml\nintent_script:", 1)[1].split("```", 1)[0]
    scripts = yaml.safe_load("intent_script:" + block)["intent_script"]
    assert set(NEEDS_INTENT_SCRIPT) <= set(scripts)
    assert all("speech" in script for script in scripts.values())
