"""Import a home from Home Assistant: registry files written as HA writes them, and a fake HA over REST + WebSocket."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Header, HTTPException, WebSocket
from typer.testing import CliRunner

from selflearn.bench.serve import _free_port
from selflearn.cli.main import app
from selflearn.home import load_home
from selflearn.integrations.conversation import ConversationInput, converse
from selflearn.integrations.ha_import import HaImportError, _ws_lists, fetch, read_config_dir, to_home
from selflearn.runtime.runtime import Runtime

runner = CliRunner()
TOKEN = "test-long-lived-token"
TS = "2025-11-02T09:14:31.112233+00:00"
SATELLITE = "assist_satellite.kitchen_voice"

FLOORS = [
    {
        "aliases": ["downstairs"],
        "created_at": TS,
        "floor_id": "ground",
        "icon": "mdi:home-floor-0",
        "level": 0,
        "modified_at": TS,
        "name": "Ground Floor",
    },
]
AREAS = [
    {
        "aliases": ["cooking area"],
        "floor_id": "ground",
        "humidity_entity_id": None,
        "icon": None,
        "id": "kuche",
        "labels": [],
        "name": "Kitchen",
        "picture": None,
        "temperature_entity_id": None,
        "created_at": TS,
        "modified_at": TS,
    },
    {
        "aliases": [],
        "floor_id": None,
        "humidity_entity_id": None,
        "icon": None,
        "id": "buro",
        "labels": [],
        "name": "Office",
        "picture": None,
        "temperature_entity_id": None,
        "created_at": TS,
        "modified_at": TS,
    },
]


def _device(device_id: str, name: str, area_id: str | None, name_by_user: str | None = None) -> dict[str, Any]:
    return {
        "area_id": area_id,
        "config_entries": ["01JB8ZK3"],
        "config_entries_subentries": {"01JB8ZK3": [None]},
        "configuration_url": None,
        "connections": [["mac", "00:17:88:01:0b:2c:6e:1f"]],
        "created_at": TS,
        "disabled_by": None,
        "entry_type": None,
        "hw_version": None,
        "id": device_id,
        "identifiers": [["hue", device_id]],
        "labels": [],
        "manufacturer": "Signify Netherlands B.V.",
        "model": "Hue go",
        "model_id": "LLC020",
        "modified_at": TS,
        "name_by_user": name_by_user,
        "name": name,
        "primary_config_entry": "01JB8ZK3",
        "serial_number": None,
        "sw_version": "1.122.2",
        "via_device_id": None,
    }


def _entity(entity_id: str, **fields: Any) -> dict[str, Any]:
    entry = {
        "aliases": [],
        "area_id": None,
        "categories": {},
        "capabilities": None,
        "config_entry_id": "01JB8ZK3",
        "config_subentry_id": None,
        "created_at": TS,
        "device_class": None,
        "device_id": None,
        "disabled_by": None,
        "entity_category": None,
        "entity_id": entity_id,
        "hidden_by": None,
        "icon": None,
        "id": f"id-{entity_id}",
        "has_entity_name": False,
        "labels": [],
        "modified_at": TS,
        "name": None,
        "options": {"conversation": {"should_expose": True}},
        "original_device_class": None,
        "original_icon": None,
        "original_name": None,
        "platform": "hue",
        "previous_unique_id": None,
        "suggested_object_id": None,
        "supported_features": 0,
        "translation_key": None,
        "unique_id": f"uid-{entity_id}",
        "unit_of_measurement": None,
    }
    return {**entry, **fields}


DEVICES = [
    _device("d-lamp", "Hue go 1", "kuche", name_by_user="Counter Lamp"),
    _device("d-sensor", "Desk Sensor", "buro"),
]
ENTITIES = [
    # area from its device, name composed by HA: device (user's name) alone, no entity name
    _entity("light.hue_go_1", device_id="d-lamp", has_entity_name=True),
    # aliases; the entity's own area overrides its device's
    _entity("light.ceiling", name="Ceiling Light", aliases=["big light", None], area_id="buro", device_id="d-lamp"),
    # device + entity name, exposed by HA's default rule (no stored choice): a temperature sensor is
    _entity(
        "sensor.desk_sensor_temperature",
        device_id="d-sensor",
        has_entity_name=True,
        original_name="Temperature",
        original_device_class="temperature",
        options={},
    ),
    # default rule again: a diagnostic entity is not exposed
    _entity(
        "sensor.desk_sensor_battery",
        device_id="d-sensor",
        has_entity_name=True,
        original_name="Battery",
        original_device_class="battery",
        entity_category="diagnostic",
        options={},
    ),
    _entity("switch.heater", original_name="Heater", area_id="buro", disabled_by="user"),
    _entity("fan.attic", original_name="Attic Fan", options={"conversation": {"should_expose": False}}),
    _entity("camera.door", original_name="Door Camera", area_id="kuche"),  # exposed, but no such domain here
    _entity("binary_sensor.door", original_name="Front Door", device_class="door", options={}),  # user's class
    # a voice satellite: an endpoint under the entity id HA sends, in its device's room
    _entity("assist_satellite.Kitchen Voice!", device_id="d-lamp", has_entity_name=True, original_name="Assist"),
]


def _store(key: str, minor: int, data: dict[str, Any]) -> dict[str, Any]:
    return {"version": 1, "minor_version": minor, "key": key, "data": data}


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    storage = tmp_path / "config" / ".storage"
    storage.mkdir(parents=True)
    files = {
        "core.area_registry": _store("core.area_registry", 8, {"areas": AREAS}),
        "core.floor_registry": _store("core.floor_registry", 2, {"floors": FLOORS}),
        "core.device_registry": _store("core.device_registry", 10, {"devices": DEVICES, "deleted_devices": []}),
        "core.entity_registry": _store("core.entity_registry", 18, {"entities": ENTITIES, "deleted_entities": []}),
    }
    for name, saved in files.items():
        (storage / name).write_text(json.dumps(saved), encoding="utf-8")
    return tmp_path / "config"


def test_a_config_dir_becomes_the_home_assist_sees(config_dir: Path) -> None:
    imported = to_home(read_config_dir(config_dir), home_id="Our Flat!")
    home = imported.home
    assert home.id == "our_flat"
    assert [(a.id, a.name, a.floor, a.aliases) for a in home.areas] == [
        ("kuche", "Kitchen", "Ground Floor", ["cooking area"]),
        ("buro", "Office", None, []),
    ]
    devices = {d.name: d for d in home.devices}
    assert set(devices) == {"Counter Lamp", "Ceiling Light", "Desk Sensor Temperature", "Front Door"}
    assert devices["Counter Lamp"].area == "kuche" and devices["Counter Lamp"].id == "light.hue_go_1"
    assert devices["Ceiling Light"].area == "buro" and devices["Ceiling Light"].aliases == ["big light"]
    assert devices["Desk Sensor Temperature"].domain == "sensor" and devices["Desk Sensor Temperature"].area == "buro"
    assert devices["Front Door"].domain == "binary_sensor" and devices["Front Door"].device_class == "door"
    assert [(e.id, e.area, e.name) for e in home.endpoints] == [
        ("assist_satellite.kitchen_voice", "kuche", "Counter Lamp Assist")
    ]
    assert {(s.entity_id, s.reason) for s in imported.skipped} == {
        ("sensor.desk_sensor_battery", "not exposed"),
        ("switch.heater", "disabled"),
        ("fan.attic", "not exposed"),
        ("camera.door", "unmapped domain"),
    }


def test_what_the_service_sends_ha_resolves_there(config_dir: Path) -> None:
    """HA's conversation input on the imported home: HA's own names come back, the satellite gives the room."""
    home = to_home(read_config_dir(config_dir)).home
    runtime = Runtime(home)
    now = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
    alias = converse(runtime, ConversationInput(text="turn off the big light", satellite_id=SATELLITE), now)
    assert [(i.name, i.entities) for i in alias.intents] == [("HassTurnOff", {"name": "Ceiling Light"})]
    room = converse(runtime, ConversationInput(text="turn on the lights", satellite_id=SATELLITE), now)
    assert [(i.name, i.entities) for i in room.intents] == [("HassTurnOn", {"area": "Kitchen", "domain": "light"})]
    assert room.turn.area == "kuche"


def test_exposure_file_turns_new_entities_off_and_says_what_legacy_entities_do(config_dir: Path) -> None:
    saved = _store(
        "homeassistant.exposed_entities",
        1,
        {"assistants": {"conversation": {"expose_new": False}}, "exposed_entities": {}},
    )
    (config_dir / ".storage" / "homeassistant.exposed_entities").write_text(json.dumps(saved), encoding="utf-8")
    names = {d.name for d in to_home(read_config_dir(config_dir)).home.devices}
    assert names == {"Counter Lamp", "Ceiling Light"}  # the default-rule ones are out; stored choices stand


def test_cli_writes_a_home_every_command_loads(config_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "homes" / "flat.yaml"
    result = runner.invoke(
        app, ["homes", "import-ha", str(config_dir), "--out", str(out), "--home-id", "flat", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["devices"] == 4 and data["areas"] == 2 and data["out"] == str(out)
    assert {"entity_id": "camera.door", "reason": "unmapped domain"} in data["skipped"]
    home = load_home(out)
    assert home.id == "flat" and home.device("light.ceiling").aliases == ["big light"]
    plain = runner.invoke(app, ["homes", "import-ha", str(config_dir), "--out", str(out)])
    assert "skipped camera.door: unmapped domain" in plain.stdout
    # the runtime answers on it by HA's names and aliases, from the imported satellite's room
    said = runner.invoke(
        app,
        [
            "interpret",
            "switch off the big light",
            "--home",
            str(out),
            "--device",
            "assist_satellite.kitchen_voice",
            "--json",
        ],
    )
    assert said.exit_code == 0, said.output
    turn = json.loads(said.stdout)["turn"]
    assert (turn["nlu_intent"], turn["nlu_slots"], turn["area"]) == ("HassTurnOff", {"name": "light.ceiling"}, "kuche")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda s: (s / "core.entity_registry").unlink(), "missing"),
        (lambda s: (s / "core.area_registry").write_text("{not json"), "cannot read"),
        (
            lambda s: (s / "core.device_registry").write_text(
                json.dumps(_store("core.device_registry", 1, {}) | {"version": 2})
            ),
            "version 1 store file",
        ),
        (
            lambda s: (s / "core.area_registry").write_text(
                json.dumps(_store("core.area_registry", 8, {"areas": [{"id": "x", "aliases": []}]}))
            ),
            "unexpected Home Assistant registry data (KeyError: 'name')",
        ),
        (
            lambda s: (s / "core.entity_registry").write_text(json.dumps(_store("core.entity_registry", 18, {}))),
            "no 'entities' list",
        ),
    ],
)
def test_a_broken_config_is_one_clear_line_and_writes_nothing(
    config_dir: Path, tmp_path: Path, damage: Any, message: str
) -> None:
    damage(config_dir / ".storage")
    out = tmp_path / "home.yaml"
    result = runner.invoke(app, ["homes", "import-ha", str(config_dir), "--out", str(out)])
    assert result.exit_code == 1 and message in result.output and not out.exists()
    assert len(result.output.strip().splitlines()) == 1


def test_not_a_config_dir_and_no_source_are_errors(tmp_path: Path) -> None:
    with pytest.raises(HaImportError, match=r"no \.storage folder"):
        read_config_dir(tmp_path)
    assert runner.invoke(app, ["homes", "import-ha", "--out", str(tmp_path / "h.yaml")]).exit_code == 2
    assert runner.invoke(app, ["homes", "import-ha", "--url", "http://127.0.0.1:9"]).exit_code == 2  # no token


def _fake_ha(storage: Path, unknown: tuple[str, ...] = ()) -> FastAPI:
    """HA's REST states and WebSocket API shapes, answered from the registry files (list layouts, not storage)."""
    saved = {p.name: json.loads(p.read_text()) for p in storage.iterdir()}
    entities = saved["core.entity_registry"]["data"]["entities"]
    extended_keys = ("aliases", "capabilities", "device_class", "original_device_class", "original_icon")
    states = [
        {
            "entity_id": "light.hue_go_1",
            "state": "on",
            "attributes": {"friendly_name": "Counter Lamp", "brightness": 128},
        },
        {"entity_id": "binary_sensor.door", "state": "off", "attributes": {"device_class": "door"}},
        # an entity without a unique id: only in states and in the exposure list
        {"entity_id": "light.yaml_strip", "state": "off", "attributes": {"friendly_name": "Shelf Strip"}},
        {"entity_id": "light.yaml_hidden", "state": "off", "attributes": {"friendly_name": "Hidden Strip"}},
    ]
    results: dict[str, Any] = {
        "config/area_registry/list": [
            {**{k: v for k, v in a.items() if k != "id"}, "area_id": a["id"]}
            for a in saved["core.area_registry"]["data"]["areas"]
        ],
        "config/floor_registry/list": saved["core.floor_registry"]["data"]["floors"],
        "config/device_registry/list": saved["core.device_registry"]["data"]["devices"],
        "config/entity_registry/list": [{k: v for k, v in e.items() if k not in extended_keys} for e in entities],
        "homeassistant/expose_entity/list": {
            "exposed_entities": {
                **{
                    e["entity_id"]: {"conversation": e["options"]["conversation"]["should_expose"]}
                    for e in entities
                    if e["options"]
                },
                "light.yaml_strip": {"conversation": True},
                "light.yaml_hidden": {"conversation": False},
            }
        },
        "homeassistant/expose_new_entities/get": {"expose_new": True},
    }
    api = FastAPI()

    @api.get("/api/states")
    def api_states(authorization: str = Header("")) -> list[dict[str, Any]]:
        if authorization != f"Bearer {TOKEN}":
            raise HTTPException(401, "Unauthorized")
        return states

    @api.websocket("/api/websocket")
    async def websocket(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json({"type": "auth_required", "ha_version": "2025.11.1"})
        auth = await ws.receive_json()
        if auth.get("access_token") != TOKEN:
            await ws.send_json({"type": "auth_invalid", "message": "Invalid access token or password"})
            await ws.close()
            return
        await ws.send_json({"type": "auth_ok", "ha_version": "2025.11.1"})
        while True:
            msg = await ws.receive_json()
            await ws.send_json({"id": 999, "type": "event", "event": {}})  # HA interleaves events
            if msg["type"] == "config/entity_registry/get_entries":
                by_id = {e["entity_id"]: e for e in entities}
                result = {eid: by_id.get(eid) for eid in msg["entity_ids"]}
            elif msg["type"] in results and msg["type"] not in unknown:
                result = results[msg["type"]]
            else:
                await ws.send_json(
                    {
                        "id": msg["id"],
                        "type": "result",
                        "success": False,
                        "error": {"code": "unknown_command", "message": "Unknown command."},
                    }
                )
                continue
            await ws.send_json({"id": msg["id"], "type": "result", "success": True, "result": result})

    return api


@contextmanager
def _serving(api: FastAPI) -> Iterator[str]:
    port = _free_port()
    config = uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "fake Home Assistant did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def ha_url(config_dir: Path) -> Iterator[str]:
    with _serving(_fake_ha(config_dir / ".storage")) as url:
        yield url


def test_a_running_ha_imports_like_its_files_plus_unregistered_entities(config_dir: Path, ha_url: str) -> None:
    from_files = to_home(read_config_dir(config_dir)).home
    live = to_home(fetch(ha_url, TOKEN))
    extra = {d.name for d in live.home.devices} - {d.name for d in from_files.devices}
    assert extra == {"Shelf Strip"}  # exposed in HA's exposure list; "Hidden Strip" is not
    assert ("light.yaml_hidden", "not exposed") in {(s.entity_id, s.reason) for s in live.skipped}
    same = [d.model_copy(update={"state": {}}) for d in live.home.devices if d.name != "Shelf Strip"]
    assert same == from_files.devices  # aliases and device classes came from get_entries
    states = {d.id: d.state for d in live.home.devices}
    assert states["light.hue_go_1"] == {"power": True, "brightness": 50} and states["binary_sensor.door"] == {
        "power": False
    }
    assert states["light.ceiling"] == {}  # no state reported: nothing assumed
    assert live.home.areas == from_files.areas


def test_cli_over_the_api_and_a_bad_token(ha_url: str, tmp_path: Path) -> None:
    out = tmp_path / "live.yaml"
    result = runner.invoke(app, ["homes", "import-ha", "--url", ha_url, "--token", TOKEN, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["devices"] == 5 and load_home(out).areas
    bad = runner.invoke(app, ["homes", "import-ha", "--url", ha_url, "--token", "wrong", "--out", str(out)])
    assert bad.exit_code == 1 and "401" in bad.output
    with pytest.raises(HaImportError, match="refused the token"):
        asyncio.run(_ws_lists(ha_url.replace("http", "ws") + "/api/websocket", "wrong"))


def test_an_ha_older_than_floors_imports_and_a_missing_registry_command_is_an_error(config_dir: Path) -> None:
    with _serving(_fake_ha(config_dir / ".storage", unknown=("config/floor_registry/list",))) as url:
        home = to_home(fetch(url, TOKEN)).home
    assert home.area("kuche").floor is None and len(home.devices) == 5
    no_devices = _fake_ha(config_dir / ".storage", unknown=("config/device_registry/list",))
    message = "config/device_registry/list with unknown_command: Unknown command"
    with _serving(no_devices) as url, pytest.raises(HaImportError, match=message):
        fetch(url, TOKEN)
