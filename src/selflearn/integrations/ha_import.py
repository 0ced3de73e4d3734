"""Import a home from Home Assistant: its areas, floors, devices and Assist-exposed entities as a selflearn home.

HA's conversation agent matches the names, aliases, areas and floors of the entities exposed to Assist, so the home
keeps exactly those: an entity's name is HA's friendly name (the registry's user-set name, else the device name
composed with the entity name as HA does for ``has_entity_name`` entities, else the state's ``friendly_name``), its
area is its own or else its device's, and an area's floor is the floor's name. Two sources, one record layout: a
config directory's ``.storage`` registry files (read offline), or a running HA over REST (``/api/states``) and the
WebSocket API (the registries' ``list`` commands and ``homeassistant/expose_entity/list``). Exposure follows HA's
own rule (``homeassistant/components/homeassistant/exposed_entities.py``): a stored ``should_expose`` wins, else
HA's defaults for new entities. From a running HA the devices also start from HA's live states. Entity ids stay
as HA writes them (each part slugged), other HA ids become conservative slugs; entities of a domain the home model
lacks are skipped and listed; Assist satellites become the home's endpoints, under the entity ids HA sends.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import httpx
import websockets
from pydantic import ValidationError

from selflearn.errors import SelflearnError
from selflearn.home import Area, Device, Domain, Endpoint, Home

ASSISTANT = "conversation"
STORE_FILES = {
    "areas": "core.area_registry",
    "floors": "core.floor_registry",
    "devices": "core.device_registry",
    "entities": "core.entity_registry",
}
EXPOSED_FILE = "homeassistant.exposed_entities"
# HA's defaults for an entity nobody exposed or hid by hand (exposed_entities.py, dev branch 2025)
DEFAULT_EXPOSED_DOMAINS = frozenset(
    {
        "climate",
        "cover",
        "fan",
        "humidifier",
        "light",
        "media_player",
        "scene",
        "switch",
        "todo",
        "vacuum",
        "water_heater",
    }
)
DEFAULT_EXPOSED_BINARY_SENSOR_DEVICE_CLASSES = frozenset(
    {"door", "garage_door", "lock", "motion", "opening", "presence", "window"}
)
DEFAULT_EXPOSED_SENSOR_DEVICE_CLASSES = frozenset(
    {
        "aqi",
        "carbon_monoxide",
        "carbon_dioxide",
        "humidity",
        "pm10",
        "pm25",
        "temperature",
        "volatile_organic_compounds",
    }
)
CLOUD_NEVER_EXPOSED_ENTITIES = frozenset({"group.all_locks"})
DOMAINS: frozenset[str] = frozenset(get_args(Domain))
SATELLITE_DOMAIN = "assist_satellite"  # a voice satellite: an endpoint people talk to, not a device
TIMEOUT_S = 30.0
# WebSocket commands an older HA lacks, and what their absence means (floors came in 2024.4)
OPTIONAL_COMMANDS: dict[str, Any] = {"config/floor_registry/list": []}


class HaImportError(SelflearnError, ValueError):
    """A Home Assistant config or server that cannot be imported, said in one line a user can act on."""


@dataclass(frozen=True)
class HaConfig:
    """One HA instance's registries in HA's storage layout, whichever source they came from."""

    areas: list[dict[str, Any]]
    """Area registry entries (``id``, ``name``, ``aliases``, ``floor_id``)."""
    floors: list[dict[str, Any]]
    """Floor registry entries (``floor_id``, ``name``, ``aliases``)."""
    devices: list[dict[str, Any]]
    """Device registry entries (``id``, ``name``, ``name_by_user``, ``area_id``, ``disabled_by``)."""
    entities: list[dict[str, Any]]
    """Entity registry entries (``entity_id``, ``name``, ``original_name``, ``aliases``, ``options``, ...)."""
    exposed: dict[str, bool] = field(default_factory=dict)
    """Stored Assist exposure of entities outside the registry (or all, from a server): entity id -> exposed."""
    expose_new: bool = True
    """Assist's "expose new entities" setting (HA's default: on)."""
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Live states by entity id (a server only): ``friendly_name``, ``device_class`` and unregistered entities."""


@dataclass(frozen=True)
class Skipped:
    """An HA entity that did not become part of the home, and why."""

    entity_id: str
    """HA's entity id, e.g. ``update.kitchen_firmware``."""
    reason: str
    """``unmapped domain``, ``disabled`` or ``not exposed``."""


@dataclass(frozen=True)
class Imported:
    """The imported home and what was left out."""

    home: Home
    """The home, ready for ``dump_home`` and every ``--home`` option."""
    skipped: list[Skipped]
    """Entities left out, in entity id order."""

    def to_json(self) -> dict[str, Any]:
        return {
            "home": self.home.id,
            "areas": len(self.home.areas),
            "devices": len(self.home.devices),
            "endpoints": len(self.home.endpoints),
            "skipped": [{"entity_id": s.entity_id, "reason": s.reason} for s in self.skipped],
        }


def read_config_dir(config_dir: str | Path) -> HaConfig:
    """The registries of an HA config directory (``.storage`` inside it); a missing exposure file means defaults."""
    storage = Path(config_dir) / ".storage"
    if not storage.is_dir():
        raise HaImportError(f"{config_dir} is not a Home Assistant config directory (no .storage folder)")
    data = {kind: _store(storage / name, kind) for kind, name in STORE_FILES.items()}
    exposed: dict[str, bool] = {}
    expose_new = True
    exposed_path = storage / EXPOSED_FILE
    if exposed_path.exists():
        saved = _store(exposed_path, None)
        expose_new = bool(saved.get("assistants", {}).get(ASSISTANT, {}).get("expose_new", True))
        for entity_id, settings in (saved.get("exposed_entities") or {}).items():
            should = (settings.get("assistants") or {}).get(ASSISTANT, {}).get("should_expose")
            if should is not None:
                exposed[entity_id] = bool(should)
    return HaConfig(
        areas=data["areas"]["areas"],
        floors=data["floors"].get("floors", []),
        devices=data["devices"]["devices"],
        entities=data["entities"]["entities"],
        exposed=exposed,
        expose_new=expose_new,
    )


def _store(path: Path, kind: str | None) -> dict[str, Any]:
    """One HA ``Store`` file's ``data`` (major version 1 is the only one these registries have had)."""
    if not path.exists():
        if kind == "floors":
            return {}  # floors came in 2024.4; an older HA has no floor registry
        raise HaImportError(f"missing {path}: is this a Home Assistant config directory?")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HaImportError(f"cannot read {path}: {e}") from e
    version = saved.get("version") if isinstance(saved, dict) else None
    if version != 1 or not isinstance(saved.get("data"), dict):
        raise HaImportError(f"{path} is not a Home Assistant version 1 store file (version {version!r})")
    data: dict[str, Any] = saved["data"]
    if kind is not None and kind != "floors" and not isinstance(data.get(kind), list):
        raise HaImportError(f"{path} has no {kind!r} list in its data")
    return data


def fetch(url: str, token: str) -> HaConfig:
    """The registries of a running HA: states over REST, registries and exposure over the WebSocket API."""
    base = url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise HaImportError(f"--url must start with http:// or https:// (got {url!r})")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        response = httpx.get(f"{base}/api/states", headers=headers, timeout=TIMEOUT_S)
    except httpx.HTTPError as e:
        raise HaImportError(f"cannot reach Home Assistant at {base}: {e}") from e
    if response.status_code != 200:
        raise HaImportError(f"{base}/api/states answered {response.status_code} (is the token valid?)")
    try:
        states = {s["entity_id"]: s for s in response.json()}
    except (ValueError, KeyError, TypeError) as e:
        raise HaImportError(
            f"{base}/api/states is not Home Assistant's list of states ({type(e).__name__}: {e})"
        ) from e
    try:
        return _from_lists(asyncio.run(_ws_lists("ws" + base.removeprefix("http") + "/api/websocket", token)), states)
    except (KeyError, TypeError, AttributeError) as e:
        raise HaImportError(f"unexpected answer from Home Assistant's WebSocket API ({type(e).__name__}: {e})") from e


def _from_lists(lists: dict[str, Any], states: dict[str, dict[str, Any]]) -> HaConfig:
    """The WebSocket API's layouts as the storage layout (areas say ``area_id`` there, ``id`` in the file)."""
    entries = {e["entity_id"]: e for e in lists["entities"]}
    for entity_id, extended in lists["entries"].items():  # list leaves out aliases and device classes
        if extended and entity_id in entries:
            entries[entity_id] = {**entries[entity_id], **extended}
    areas = [{**a, "id": a["area_id"]} for a in lists["areas"]]
    exposed = {eid: bool(by[ASSISTANT]) for eid, by in lists["exposed"]["exposed_entities"].items() if ASSISTANT in by}
    return HaConfig(
        areas=areas,
        floors=lists["floors"],
        devices=lists["devices"],
        entities=list(entries.values()),
        exposed=exposed,
        expose_new=bool(lists["expose_new"]["expose_new"]),
        states=states,
    )


async def _ws_lists(ws_url: str, token: str) -> dict[str, Any]:
    """Each registry list, the exposure list and setting, and the extended entries (aliases, device classes)."""
    try:
        async with websockets.connect(ws_url, open_timeout=TIMEOUT_S, max_size=None) as ws:
            hello = json.loads(await ws.recv())
            if hello.get("type") != "auth_required":
                raise HaImportError(f"{ws_url} is not Home Assistant's WebSocket API (first message {hello!r})")
            await ws.send(json.dumps({"type": "auth", "access_token": token}))
            auth = json.loads(await ws.recv())
            if auth.get("type") != "auth_ok":
                raise HaImportError(f"Home Assistant refused the token: {auth.get('message', auth.get('type'))}")
            calls = {
                "areas": {"type": "config/area_registry/list"},
                "floors": {"type": "config/floor_registry/list"},
                "devices": {"type": "config/device_registry/list"},
                "entities": {"type": "config/entity_registry/list"},
                "exposed": {"type": "homeassistant/expose_entity/list"},
                "expose_new": {"type": "homeassistant/expose_new_entities/get", "assistant": ASSISTANT},
            }
            out = {kind: await _call(ws, i, msg) for i, (kind, msg) in enumerate(calls.items(), start=1)}
            ids = [e["entity_id"] for e in out["entities"]]
            out["entries"] = await _call(
                ws, len(calls) + 1, {"type": "config/entity_registry/get_entries", "entity_ids": ids}
            )
    except (TimeoutError, OSError, websockets.WebSocketException) as e:
        raise HaImportError(f"Home Assistant WebSocket API at {ws_url} failed: {e}") from e
    return out


async def _call(ws: websockets.ClientConnection, msg_id: int, message: dict[str, Any]) -> Any:
    await ws.send(json.dumps({"id": msg_id, **message}))
    while True:  # HA may interleave other messages; ours carries our id
        reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT_S))
        if reply.get("id") == msg_id and reply.get("type") == "result":
            break
    if not reply.get("success"):
        error = reply.get("error") or {}
        if error.get("code") == "unknown_command" and message["type"] in OPTIONAL_COMMANDS:
            return OPTIONAL_COMMANDS[message["type"]]
        raise HaImportError(
            f"Home Assistant answered {message['type']} with {error.get('code')}: {error.get('message')}"
        )
    return reply["result"]


def to_home(config: HaConfig, home_id: str = "home_assistant", name: str = "Home Assistant") -> Imported:
    """The home HA's Assist sees: exposed, enabled entities of the domains the home model has."""
    try:
        return _to_home(config, home_id, name)
    except (KeyError, TypeError, AttributeError) as e:  # an entry without a key HA always writes, or of another shape
        raise HaImportError(f"unexpected Home Assistant registry data ({type(e).__name__}: {e})") from e


def _to_home(config: HaConfig, home_id: str, name: str) -> Imported:
    slugs = _Slugs()
    floors = {f["floor_id"]: f["name"] for f in config.floors}
    area_ids = {a["id"]: slugs.new(a["id"]) for a in config.areas}
    areas = [
        Area(
            id=area_ids[a["id"]],
            name=a["name"],
            floor=floors.get(a.get("floor_id") or ""),
            aliases=_aliases(a.get("aliases"), a["name"]),
        )
        for a in config.areas
    ]
    devices = {d["id"]: d for d in config.devices}
    entries = {e["entity_id"]: e for e in config.entities}
    skipped: list[Skipped] = []
    placed: list[Device] = []
    endpoints: list[Endpoint] = []
    for entity_id in sorted({*entries, *config.states}):
        entry = entries.get(entity_id)
        state = config.states.get(entity_id, {})
        domain = entity_id.split(".", 1)[0]
        device = devices.get((entry or {}).get("device_id") or "")
        if (entry and entry.get("disabled_by")) or (device and device.get("disabled_by")):
            skipped.append(Skipped(entity_id, "disabled"))
            continue
        device_class = _device_class(entry, state)
        if not _should_expose(entity_id, entry, device_class, config):
            skipped.append(Skipped(entity_id, "not exposed"))
            continue
        ha_area = (entry or {}).get("area_id") or (device or {}).get("area_id")
        area = area_ids.get(ha_area or "")
        entity_name = _name(entry, device, state) or entity_id
        if domain == SATELLITE_DOMAIN:
            endpoints.append(Endpoint(id=slugs.new(entity_id, entity=True), area=area, name=entity_name))
        elif domain not in DOMAINS:
            skipped.append(Skipped(entity_id, "unmapped domain"))
        else:
            placed.append(
                Device(
                    id=slugs.new(entity_id, entity=True),
                    name=entity_name,
                    domain=domain,
                    area=area,
                    aliases=_aliases((entry or {}).get("aliases"), entity_name),
                    device_class=device_class,
                    state=_live_state(domain, state),
                )
            )
    try:
        home = Home(id=_slug(home_id), name=name, areas=areas, devices=placed, endpoints=endpoints)
    except ValidationError as e:
        raise HaImportError(f"the imported home is invalid: {e.errors()[0]['msg']}") from e
    return Imported(home, skipped)


def _live_state(domain: str, state: Mapping[str, Any]) -> dict[str, Any]:
    """HA's state (a running HA only) in the home model's terms, so the runtime starts from the real one."""
    value, attributes = state.get("state"), state.get("attributes") or {}
    if value in (None, "unavailable", "unknown"):
        return {}
    if domain in ("light", "switch", "fan", "binary_sensor"):
        out: dict[str, Any] = {"power": value == "on"}
        if domain == "light" and isinstance(attributes.get("brightness"), int):
            out["brightness"] = round(attributes["brightness"] * 100 / 255)  # HA: 0-255, the home model: percent
        return out
    if domain == "media_player":
        return {"power": value not in ("off", "standby")}
    if domain in ("cover", "valve"):
        return {"position": attributes.get("current_position", 100 if value == "open" else 0)}
    if domain == "lock":
        return {"locked": value == "locked"}
    if domain == "climate":
        temps = {
            "temperature": attributes.get("current_temperature"),
            "target_temperature": attributes.get("temperature"),
        }
        return {"power": value != "off", **{k: v for k, v in temps.items() if isinstance(v, int | float)}}
    return {}


def _should_expose(entity_id: str, entry: Mapping[str, Any] | None, device_class: str | None, cfg: HaConfig) -> bool:
    """HA's ``ExposedEntities.async_should_expose`` for Assist."""
    if entity_id in CLOUD_NEVER_EXPOSED_ENTITIES:
        return False
    stored = ((entry or {}).get("options") or {}).get(ASSISTANT, {}).get("should_expose")
    if stored is None:
        stored = cfg.exposed.get(entity_id)
    if stored is not None:
        return bool(stored)
    if not cfg.expose_new:
        return False
    if entry and (entry.get("entity_category") is not None or entry.get("hidden_by") is not None):
        return False
    domain = entity_id.split(".", 1)[0]
    return (
        domain in DEFAULT_EXPOSED_DOMAINS
        or (domain == "binary_sensor" and device_class in DEFAULT_EXPOSED_BINARY_SENSOR_DEVICE_CLASSES)
        or (domain == "sensor" and device_class in DEFAULT_EXPOSED_SENSOR_DEVICE_CLASSES)
    )


def _device_class(entry: Mapping[str, Any] | None, state: Mapping[str, Any]) -> str | None:
    """HA's ``get_device_class``: the user's override, else the integration's, else the state attribute."""
    if entry is not None and (entry.get("device_class") or entry.get("original_device_class")):
        return str(entry.get("device_class") or entry.get("original_device_class"))
    value = (state.get("attributes") or {}).get("device_class")
    return str(value) if value else None


def _name(entry: Mapping[str, Any] | None, device: Mapping[str, Any] | None, state: Mapping[str, Any]) -> str | None:
    """HA's friendly name: the user's name, else ``<device> <entity>`` for ``has_entity_name``, else the platform's."""
    friendly = (state.get("attributes") or {}).get("friendly_name")
    if entry is None:
        return str(friendly) if friendly else None
    if entry.get("name"):
        return str(entry["name"])
    original = entry.get("original_name")
    if entry.get("has_entity_name") and device is not None:
        device_name = device.get("name_by_user") or device.get("name")
        if device_name:
            return f"{device_name} {original}" if original else str(device_name)
    return str(original) if original else (str(friendly) if friendly else None)


def _aliases(values: Any, name: str) -> list[str]:
    """Text aliases other than the name (HA also stores ``null`` for "the name itself" in newer versions)."""
    out: list[str] = []
    for value in values or []:
        if isinstance(value, str) and value.strip() and value != name and value not in out:
            out.append(value.strip())
    return out


def _slug(value: str) -> str:
    """A conservative id: lower-case ASCII letters, digits and ``_`` (HA ids are arbitrary strings)."""
    return re.sub(r"[^a-z0-9]+", "_", value.casefold()).strip("_")[:80] or "x"


def _entity_slug(entity_id: str) -> str:
    """An entity id kept as HA writes it (``light.kitchen``: satellites are looked up by it), each part slugged."""
    domain, _, object_id = entity_id.partition(".")
    return f"{_slug(domain)}.{_slug(object_id)}"


class _Slugs:
    """Unique slugs: a second HA id with the same slug gets ``_2``, ``_3``, ..."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def new(self, value: str, entity: bool = False) -> str:
        base = slug = _entity_slug(value) if entity else _slug(value)
        n = 1
        while slug in self.used:
            n += 1
            slug = f"{base}_{n}"
        self.used.add(slug)
        return slug
