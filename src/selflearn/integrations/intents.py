"""selflearn's readings as Home Assistant intents: the intent names and entities HA's intent handlers expect.

The NLU runs over home-assistant-intents, so most readings already carry an HA intent name (``HassTurnOn``) and HA's
slot names (``name``, ``area``, ``floor``, ``domain``, ``brightness``, ``temperature``, ...); only the values change:
a device becomes its friendly name and an area id its area's name, since HA matches entities by name and alias. A
spoken name that entity resolution (or a learned rewrite) tied to one device is sent as that device's exact name.
selflearn's own intents map onto HA's where one exists (``PlayMedia`` -> ``HassMediaSearchAndPlay``, brewing on the
coffee maker -> ``HassTurnOn``); the others keep their name and need an ``intent_script`` in HA (the example is in
docs/home-assistant.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selflearn.home import Device, Home
from selflearn.runtime.context import Candidate
from selflearn.runtime.resolve import Resolution

# selflearn intents HA has no handler for unless the user adds an ``intent_script`` (when no mapping below applies).
NEEDS_INTENT_SCRIPT = ("WeatherIn", "WatchGame", "FindRestaurant", "StartProgram", "GetDeviceState")
# media_type -> HA's MediaClass value (HassMediaSearchAndPlay's ``media_class``)
MEDIA_CLASS = {"music": "music", "movie": "movie", "podcast": "podcast"}
# domains whose "start" is a plain turn-on in HA (a coffee maker is a switch there)
TURN_ON_DOMAINS = ("coffee_maker", "switch", "fan", "light", "media_player")


@dataclass(frozen=True)
class HaIntent:
    """An intent as HA's ``intent.async_handle`` takes it (the Wyoming ``Intent`` event carries the same)."""

    name: str
    """HA intent type, e.g. "HassTurnOn", or a selflearn intent an intent_script handles."""
    entities: dict[str, Any]
    """Slot name -> value, e.g. {"name": "Kitchen Light"}."""


def to_ha(reading: Candidate, resolution: Resolution | None, home: Home) -> HaIntent:
    """The HA intent for one reading; selflearn-only intents become HA's own where one exists."""
    ids = {d.id for d in home.devices}
    devices = [home.device(d) for d in (resolution.devices if resolution else []) if d in ids]
    entities = _entities(reading.slots, devices, home)
    mapped = _SELFLEARN_ONLY.get(reading.intent)
    found = mapped(reading.slots, entities, devices) if mapped else None
    return found or HaIntent(reading.intent, entities)


def _entities(slots: dict[str, Any], devices: list[Device], home: Home) -> dict[str, Any]:
    areas = {a.id: a.name for a in home.areas}
    out: dict[str, Any] = {}
    for key, value in slots.items():
        if key == "name":
            value = _device_name(value, devices, home)
        elif key == "area" and isinstance(value, str):
            value = areas.get(value, value)
        out[key] = value
    if "name" not in out and "area" not in out and len(devices) == 1:
        out["name"] = devices[0].name  # context picked the device ("turn it off"): say which one
    return out


def _device_name(value: Any, devices: list[Device], home: Home) -> Any:
    named = {d.id: d.name for d in home.devices}
    if isinstance(value, str) and value in named:
        return named[value]
    return devices[0].name if len(devices) == 1 else value


def _play_media(slots: dict[str, Any], entities: dict[str, Any], devices: list[Device]) -> HaIntent:
    out: dict[str, Any] = {k: entities[k] for k in ("name", "area") if k in entities}
    for key, media_class in (("title", MEDIA_CLASS.get(str(slots.get("media_type")))), ("artist", "artist"),
                             ("genre", "genre")):  # fmt: skip
        if slots.get(key):
            out["search_query"] = slots[key]
            if media_class:
                out["media_class"] = media_class
            break
    else:
        out["search_query"] = str(slots.get("media_type") or "music")
        out["media_class"] = MEDIA_CLASS.get(out["search_query"], "music")
    return HaIntent("HassMediaSearchAndPlay", out)


def _start_program(slots: dict[str, Any], entities: dict[str, Any], devices: list[Device]) -> HaIntent | None:
    if len(devices) != 1 or slots.get("program") == "preheat":
        return None  # the oven's target temperature has no HA intent: intent_script
    device = devices[0]
    if device.domain == "vacuum":
        return HaIntent("HassVacuumStart", {"name": device.name})
    if device.domain in TURN_ON_DOMAINS:
        return HaIntent("HassTurnOn", {"name": device.name})
    return None


def _device_state(slots: dict[str, Any], entities: dict[str, Any], devices: list[Device]) -> HaIntent | None:
    if len(devices) != 1:
        return None
    device = devices[0]
    if slots.get("attribute") == "temperature":
        return HaIntent("HassClimateGetTemperature", {"name": device.name}) if device.domain == "climate" else None
    return HaIntent("HassGetState", {"name": device.name})


_SELFLEARN_ONLY: dict[str, Callable[[dict[str, Any], dict[str, Any], list[Device]], HaIntent | None]] = {
    "PlayMedia": _play_media,
    "StartProgram": _start_program,
    "GetDeviceState": _device_state,
}
