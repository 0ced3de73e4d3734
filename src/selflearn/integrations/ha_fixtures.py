"""HA's intent-test fixture home (``data/ha_tests/_fixtures.yaml``) as a Home Assistant config directory.

The ``peer-ha`` suite can run on a home imported from HA's registry files (``--ha-config``); this writes those files
the way HA stores them (``.storage/core.*_registry`` with HA's keys and versions), so the import is tested on the
same names HA's own tests use. Every fixture entity is a registry entity exposed to Assist, as HA's tests expose
them. ``pad`` adds a realistic rest of a house (13 more areas of lights, plugs, multisensors, blinds, speakers and
thermostats on devices, with HA's default exposure, diagnostics, a disabled entity and firmware updates) so the
import is measured on a home of HA's usual size, with names that compete.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hassil import is_template, parse_sentence, sample_expression

from selflearn.integrations.ha_import import HaConfig

CREATED = "2026-01-01T00:00:00+00:00"
# (key, minor_version) of each store file as HA 2025.x/2026.x writes them; all are major version 1
STORE_VERSIONS = {
    "core.area_registry": 8,
    "core.floor_registry": 2,
    "core.device_registry": 10,
    "core.entity_registry": 18,
}
PAD_AREAS: tuple[tuple[str, str, list[str]], ...] = (
    ("Hallway", "ground_floor_id", ["Hall"]),
    ("Dining Room", "first_floor_id", []),
    ("Bathroom", "second_floor_id", ["Washroom"]),
    ("Laundry Room", "basement_id", ["Utility Room"]),
    ("Nursery", "second_floor_id", ["Baby Room"]),
    ("Study", "second_floor_id", []),
    ("Attic", "upstairs_id", ["Loft"]),
    ("Patio", "ground_floor_id", []),
    ("Porch", "ground_floor_id", ["Front Porch"]),
    ("Pantry", "first_floor_id", []),
    ("Playroom", "upstairs_id", []),
    ("Gym", "basement_id", ["Workout Room"]),
    ("Workshop", "basement_id", []),
)


def names(template: str) -> list[str]:
    """A fixture name's spoken forms (HA's fixtures may write ``Trader Joe[']s``): first is the name, rest aliases."""
    if is_template(template):
        return [n.strip() for n in sample_expression(parse_sentence(template).expression)]
    return [template.strip()]


def fixture_config(fixtures: Mapping[str, Any]) -> HaConfig:
    """HA's test fixtures (areas, floors, entities) as registry entries, each entity exposed to Assist."""
    floors = [_floor(f["id"], f["name"], level) for level, f in enumerate(fixtures.get("floors", []))]
    areas = [_area(a.get("id") or _fixture_id(a["name"]), a["name"], a.get("floor")) for a in fixtures.get("areas", [])]
    entities = []
    for e in fixtures.get("entities", []):
        spoken = names(e["name"])
        attributes = e.get("attributes") or {}
        entities.append(
            _entity(
                e.get("id") or f"{e['domain']}.{_fixture_id(spoken[0]).removesuffix('_id')}",
                original_name=spoken[0],
                aliases=spoken[1:],
                area_id=e.get("area"),
                device_class=attributes.get("device_class"),
                unit=attributes.get("unit_of_measurement"),
                expose=True,
            )
        )
    return HaConfig(areas=areas, floors=floors, devices=[], entities=entities)


def padding() -> HaConfig:
    """The rest of a realistic house: 13 areas, each with devices whose entity names HA composes."""
    areas, devices, entities = [], [], []
    for i, (name, floor, aliases) in enumerate(PAD_AREAS):
        slug = name.lower().replace(" ", "_")
        area_id = f"{slug}_id"
        areas.append(_area(area_id, name, floor, aliases))
        light = _device(f"{slug}_light", f"{name} Ceiling Light", area_id, "Signify", "Hue white ambiance")
        sensor = _device(f"{slug}_sensor", f"{name} Multisensor", area_id, "Aqara", "RTCGQ11LM")
        plug = _device(f"{slug}_plug", f"{name} Plug", area_id, "TP-Link", "KP115")
        devices += [light, sensor, plug]
        entities += [
            _entity(f"light.{slug}_ceiling", device=light, has_entity_name=True),
            _entity(f"binary_sensor.{slug}_motion", device=sensor, original_name="Motion", device_class="motion"),
            _entity(
                f"sensor.{slug}_temperature",
                device=sensor,
                original_name="Temperature",
                device_class="temperature",
                unit="°C",
            ),
            _entity(
                f"sensor.{slug}_battery",
                device=sensor,
                original_name="Battery",
                device_class="battery",
                unit="%",
                category="diagnostic",
            ),
            _entity(f"switch.{slug}_plug", device=plug, has_entity_name=True),
            _entity(f"sensor.{slug}_plug_power", device=plug, original_name="Power", device_class="power", unit="W"),
            _entity(f"update.{slug}_plug_firmware", device=plug, original_name="Firmware", category="config"),
        ]
        if i % 3 == 0:  # blinds
            entities.append(
                _entity(
                    f"cover.{slug}_blinds",
                    original_name=f"{name} Blinds",
                    area_id=area_id,
                    device_class="blind",
                    aliases=[f"{name} Shades"],
                )
            )
        elif i % 3 == 1:  # a speaker; its identify button exposed by hand (a domain the home model lacks)
            speaker = _device(f"{slug}_speaker", f"{name} Speaker", area_id, "Sonos", "One SL")
            devices.append(speaker)
            entities += [
                _entity(f"media_player.{slug}_speaker", device=speaker, has_entity_name=True),
                _entity(f"button.{slug}_speaker_identify", device=speaker, original_name="Identify", expose=True),
            ]
        else:  # a thermostat; the night light beside it was disabled by its user
            thermostat = _device(f"{slug}_thermostat", f"{name} Thermostat", area_id, "ecobee", "SmartThermostat")
            devices.append(thermostat)
            entities += [
                _entity(f"climate.{slug}_thermostat", device=thermostat, has_entity_name=True),
                _entity(
                    f"light.{slug}_night_light", original_name=f"{name} Night Light", area_id=area_id, disabled=True
                ),
            ]
    return HaConfig(areas=areas, floors=[], devices=devices, entities=entities)


def merged(*configs: HaConfig) -> HaConfig:
    """Several sets of registry entries as one HA (later entries of the same id win)."""

    def union(kind: str, key: str) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for config in configs:
            out.update({item[key]: item for item in getattr(config, kind)})
        return list(out.values())

    exposed = {k: v for c in configs for k, v in c.exposed.items()}
    return HaConfig(
        areas=union("areas", "id"),
        floors=union("floors", "floor_id"),
        devices=union("devices", "id"),
        entities=union("entities", "entity_id"),
        exposed=exposed,
        expose_new=all(c.expose_new for c in configs),
    )


def write_config_dir(config: HaConfig, config_dir: str | Path) -> Path:
    """Write ``.storage`` registry files as HA does (``version``, ``minor_version``, ``key``, ``data``)."""
    storage = Path(config_dir) / ".storage"
    storage.mkdir(parents=True, exist_ok=True)
    payloads = {
        "core.area_registry": {"areas": config.areas},
        "core.floor_registry": {"floors": config.floors},
        "core.device_registry": {"devices": config.devices, "deleted_devices": []},
        "core.entity_registry": {"entities": config.entities, "deleted_entities": []},
    }
    for key, data in payloads.items():
        saved = {"version": 1, "minor_version": STORE_VERSIONS[key], "key": key, "data": data}
        (storage / key).write_text(json.dumps(saved, indent=2, ensure_ascii=False), encoding="utf-8")
    exposed = {
        "assistants": {"conversation": {"expose_new": config.expose_new}},
        "exposed_entities": {
            eid: {"assistants": {"conversation": {"should_expose": v}}} for eid, v in config.exposed.items()
        },
    }
    saved = {"version": 1, "minor_version": 1, "key": "homeassistant.exposed_entities", "data": exposed}
    (storage / "homeassistant.exposed_entities").write_text(json.dumps(saved, indent=2), encoding="utf-8")
    return storage


def _fixture_id(name: str) -> str:
    """The id HA's fixtures give a named area (``Living Room`` -> ``living_room_id``), for files that omit it."""
    return "_".join(name.lower().split()) + "_id"


def _uid(*parts: str) -> str:
    return hashlib.md5("/".join(parts).encode()).hexdigest()  # a stable fake HA id, not security


def _floor(floor_id: str, name: str, level: int) -> dict[str, Any]:
    return {
        "aliases": [],
        "created_at": CREATED,
        "floor_id": floor_id,
        "icon": None,
        "level": level,
        "modified_at": CREATED,
        "name": name,
    }


def _area(area_id: str, name: str, floor_id: str | None, aliases: list[str] | None = None) -> dict[str, Any]:
    return {
        "aliases": aliases or [],
        "floor_id": floor_id,
        "humidity_entity_id": None,
        "icon": None,
        "id": area_id,
        "labels": [],
        "name": name,
        "picture": None,
        "temperature_entity_id": None,
        "created_at": CREATED,
        "modified_at": CREATED,
    }


def _device(key: str, name: str, area_id: str, manufacturer: str, model: str) -> dict[str, Any]:
    return {
        "area_id": area_id,
        "config_entries": [_uid("entry", manufacturer)],
        "config_entries_subentries": {},
        "configuration_url": None,
        "connections": [],
        "created_at": CREATED,
        "disabled_by": None,
        "entry_type": None,
        "hw_version": None,
        "id": _uid("device", key),
        "identifiers": [[manufacturer, key]],
        "labels": [],
        "manufacturer": manufacturer,
        "model": model,
        "model_id": None,
        "modified_at": CREATED,
        "name_by_user": None,
        "name": name,
        "primary_config_entry": _uid("entry", manufacturer),
        "serial_number": None,
        "sw_version": "1.0.0",
        "via_device_id": None,
    }


def _entity(
    entity_id: str,
    *,
    original_name: str | None = None,
    aliases: list[str] | None = None,
    area_id: str | None = None,
    device: Mapping[str, Any] | None = None,
    has_entity_name: bool | None = None,
    device_class: str | None = None,
    unit: str | None = None,
    category: str | None = None,
    disabled: bool = False,
    expose: bool | None = None,
) -> dict[str, Any]:
    """One entity registry entry in HA's storage layout (``expose=None``: no stored choice, HA's default rule)."""
    platform = str(device["identifiers"][0][0]).lower() if device else "template"
    return {
        "aliases": aliases or [],
        "area_id": area_id,
        "categories": {},
        "capabilities": None,
        "config_entry_id": device["primary_config_entry"] if device else None,
        "config_subentry_id": None,
        "created_at": CREATED,
        "device_class": None,
        "device_id": device["id"] if device else None,
        "disabled_by": "user" if disabled else None,
        "entity_category": category,
        "entity_id": entity_id,
        "hidden_by": None,
        "icon": None,
        "id": _uid("entity", entity_id),
        "has_entity_name": bool(device) if has_entity_name is None else has_entity_name,
        "labels": [],
        "modified_at": CREATED,
        "name": None,
        "options": {} if expose is None else {"conversation": {"should_expose": expose}},
        "original_device_class": device_class,
        "original_icon": None,
        "original_name": original_name,
        "platform": platform,
        "previous_unique_id": None,
        "suggested_object_id": None,
        "supported_features": 0,
        "translation_key": None,
        "unique_id": entity_id,
        "unit_of_measurement": unit,
    }
