"""Home configuration: areas, devices, the assistant endpoints people talk to, and the people who live there.

A home is plain YAML (see ``docs/homes.md``) so that a user can describe their own home and run any eval suite on it
with ``--home PATH``. The runtime reads devices and areas for NLU slot lists and entity resolution; device ``state``
is the live state the executor changes and the context re-ranker reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from selflearn import paths
from selflearn.errors import UsageError, validation_summary
from selflearn.ids import Id
from selflearn.schema import DeviceType

Domain = Literal[
    "light",
    "switch",
    "fan",
    "cover",
    "climate",
    "lock",
    "media_player",
    "vacuum",
    "oven",
    "coffee_maker",
    "sensor",
    "binary_sensor",
    "valve",
    "scene",
    "script",
    "todo",
]

SHIPPED_HOMES_DIR = paths.PACKAGE_DATA / "homes"
# Homes shipped for one eval suite (``willow_house``: realphrasing); kept out of ``shipped_homes``, so adding one
# does not change what every other suite and bench measures.
EVAL_HOMES_DIR = SHIPPED_HOMES_DIR / "eval"
MAX_HOME_BYTES = 1024 * 1024  # the shipped homes are ~5 KB; a home of hundreds of devices stays far below this
MAX_HOME_NODES = 100_000  # values in the document with every alias expanded ("billion laughs" is ~10^9)
MAX_HOME_DEPTH = 32  # nesting of the document (a home needs 5)


class HomeError(UsageError):
    """A home file that cannot be used, with the reason in words a user can act on."""


class UnsafeHomeError(HomeError):
    """A home file refused before it is built: too big, nested too deep, or aliases that expand too far."""


class _HomeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the document's depth and alias-expanded size bounded before anything is built.

    Aliases themselves are cheap in the node graph (a reference to an earlier node); what explodes is everything that
    walks the expanded tree afterwards (construction, pydantic). So the expanded size is counted on the node graph,
    each node's size computed once, and composition refuses nesting that would recurse too deep. The scanner refuses
    deep ``[``/``{`` nesting itself: it looks ahead over a whole flow collection, in time quadratic in its depth.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, TokenClass: type[yaml.Token]) -> None:
        if self.flow_level >= MAX_HOME_DEPTH:
            raise UnsafeHomeError(f"nested more than {MAX_HOME_DEPTH} levels deep")
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_HOME_DEPTH:
                raise UnsafeHomeError(f"nested more than {MAX_HOME_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_size(root: yaml.Node) -> int:
    """How many nodes the document has with every alias expanded; each distinct node is sized once (no recursion)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.SequenceNode):
            children: list[yaml.Node] = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            sizes[id(node)] = 1
            continue
        if children_done:
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), MAX_HOME_NODES + 1)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def _safe_yaml(text: str) -> Any:
    """The YAML document as Python data, refusing documents that would take long or much memory to build."""
    loader = _HomeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node)
        if size > MAX_HOME_NODES:
            raise UnsafeHomeError(f"more than {MAX_HOME_NODES:,} values once its aliases are expanded")
        return loader.construct_document(node)
    finally:
        loader.dispose()


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Area(_Config):
    id: str
    """Stable area id (HA's area_id when imported)."""
    name: str
    """Name people say for the area."""
    floor: str | None = None
    """Floor the area is on, if known."""
    aliases: list[str] = Field(default_factory=list)
    """Other names people use for it."""


class Device(_Config):
    """Something the assistant can act on or ask about."""

    id: Id
    """Stable device id (HA's entity id when imported)."""
    name: str
    """Name people say for the device."""
    domain: Domain
    """What kind of thing it is (light, climate, media_player, ...)."""
    area: str | None
    """Area id it is in; None: placed nowhere (an HA entity with no area, on a device with none)."""
    aliases: list[str] = Field(default_factory=list)
    """Other names people use for it."""
    capabilities: list[str] = Field(default_factory=list)
    """What it can do beyond on/off: brightness, color, video, volume, temperature, position, ..."""
    state: dict[str, Any] = Field(default_factory=dict)
    """Its current state: attribute -> value (power, brightness, volume, temperature, ...)."""
    device_class: str | None = None
    """HA's device class (door, garage, curtain, ...): some HA sentences require one."""

    @property
    def names(self) -> list[str]:
        return [self.name, *self.aliases]


class Endpoint(_Config):
    """A microphone people talk to: a smart speaker, a screen, a TV."""

    id: Id
    """Stable endpoint id: the device_id of logged turns."""
    type: DeviceType | None = None
    """Kind of endpoint; None: unknown (a Home Assistant satellite says nothing of its kind)."""
    area: str | None = None
    """Area id it is in; None: unknown, no room context (a satellite the home file does not place)."""
    name: str = ""
    """Display name of the endpoint, if any."""


class Routine(_Config):
    """A request a person habitually makes around a time of day (``HH:MM``), on some days of the week."""

    at: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    """Local time of day the request is usually made, ``HH:MM``."""
    say: str
    """What the person says then."""
    days: list[int] = Field(default_factory=lambda: list(range(7)))
    """Days of the week it happens on, 0 = Monday."""
    probability: float = Field(default=0.8, ge=0.0, le=1.0)
    """Chance it happens on one of those days (0..1)."""


class Person(_Config):
    id: Id
    """Stable person id: the user_id of logged turns."""
    name: str
    """How the household calls them."""
    endpoints: list[str] = Field(default_factory=list, description="Endpoint ids this person usually talks to.")
    habits: dict[str, str] = Field(
        default_factory=dict, description="Stable tastes, e.g. music_genre: jazz, team: Warriors, cuisine: Italian."
    )
    routines: list[Routine] = Field(default_factory=list)
    """Requests this person habitually makes at a time of day."""
    city: str | None = None
    """Their home city for weather and local requests, if not the home's."""


class Home(_Config):
    id: Id
    """Stable home id: the home_id of logged turns."""
    name: str = ""
    """Display name of the home."""
    city: str = ""
    """City the home is in (weather, time and local requests)."""
    timezone: str = "UTC"
    """IANA time zone the home's local times are in."""
    areas: list[Area]
    """Rooms and zones of the home."""
    devices: list[Device]
    """Things the assistant can act on or ask about."""
    endpoints: list[Endpoint]
    """Microphones people talk to."""
    people: list[Person] = Field(default_factory=list)
    """Who lives there."""

    @model_validator(mode="after")
    def _references_resolve(self) -> Home:
        area_ids = {a.id for a in self.areas}
        for kind, items in (("area", self.areas), ("device", self.devices), ("endpoint", self.endpoints)):
            ids = [i.id for i in items]
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"duplicate {kind} id(s): {', '.join(dupes)}")
        placed: list[Device | Endpoint] = [*self.devices, *self.endpoints]
        for item in placed:
            if item.area is not None and item.area not in area_ids:
                raise ValueError(f"{item.id!r} is in unknown area {item.area!r} (known: {', '.join(sorted(area_ids))})")
        endpoint_ids = {e.id for e in self.endpoints}
        for person in self.people:
            unknown = [e for e in person.endpoints if e not in endpoint_ids]
            if unknown:
                raise ValueError(f"person {person.id!r} uses unknown endpoint(s) {unknown}")
        return self

    def area(self, area_id: str) -> Area:
        return next(a for a in self.areas if a.id == area_id)

    def device(self, device_id: str) -> Device:
        return next(d for d in self.devices if d.id == device_id)

    def endpoint(self, endpoint_id: str) -> Endpoint:
        for e in self.endpoints:
            if e.id == endpoint_id:
                return e
        raise HomeError(f"home {self.id!r} has no endpoint {endpoint_id!r}")

    def person(self, person_id: str) -> Person:
        for p in self.people:
            if p.id == person_id:
                return p
        raise HomeError(f"home {self.id!r} has no person {person_id!r}")

    def devices_in(self, area_id: str | None) -> Iterator[Device]:
        return (d for d in self.devices if d.area == area_id)


def load_home(path: str | Path) -> Home:
    """A home from a user's YAML file; ``HomeError`` (``UnsafeHomeError`` for hostile files) says what is wrong."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_HOME_BYTES + 1)
        if len(raw) > MAX_HOME_BYTES:
            raise UnsafeHomeError(f"home file {path} is over {MAX_HOME_BYTES:,} bytes")
        data = _safe_yaml(raw.decode("utf-8"))
    except UnsafeHomeError as e:
        raise UnsafeHomeError(f"refusing home file {path}: {e}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise HomeError(f"cannot read home file {path}: {' '.join(str(e).split())}") from e
    try:
        return Home.model_validate(data)
    except ValidationError as e:
        raise HomeError(f"invalid home file {path}: {validation_summary(e)}") from e


def shipped_homes() -> list[Home]:
    """The hand-written homes that ship with selflearn, in name order (stable for seeding)."""
    return [load_home(p) for p in sorted(SHIPPED_HOMES_DIR.glob("*.yaml"))]


def find_home(ref: str | Path) -> Home:
    """A shipped home by id, or a home YAML by path: what every ``--home`` option accepts."""
    if str(ref).endswith((".yaml", ".yml")) or Path(ref).is_file():
        return load_home(ref)
    homes = shipped_homes() + [load_home(p) for p in sorted(EVAL_HOMES_DIR.glob("*.yaml"))]
    for home in homes:
        if home.id == str(ref):
            return home
    known = ", ".join(h.id for h in homes)
    raise HomeError(f"unknown home {str(ref)!r}: give a YAML path or a shipped home id ({known})")


def dump_home(home: Home, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(home.model_dump(exclude_defaults=True), sort_keys=False), encoding="utf-8")
