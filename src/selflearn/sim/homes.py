"""A seeded generator of random, valid homes: rooms, devices, speakers and screens, people with tastes and routines.

Diversity is the point (eval suites must not overfit one hand-written house): 3-8 rooms, a different device mix per
home, lamps named many ways, 1-4 people who use different endpoints, towns from several states (some sharing a
name), routines at their usual hours. Some tastes are left out of the home file on purpose: the simulated person
still has them, the assistant does not know them, which is what teaching and personal rewrites are for.
"""

from __future__ import annotations

import random
from typing import Any

from selflearn.home import Area, Device, Endpoint, Home, Person, Routine
from selflearn.sim.names import CITIES, CUISINES, FIRST_NAMES, GENRES, LIGHT_NAMES, ROOMS, SURNAMES, TEAMS

TIMEZONES = ("America/Los_Angeles", "America/Denver", "America/Chicago", "America/New_York")
# Room-specific extras: (probability, id suffix, name, domain, aliases, capabilities, state)
EXTRAS: dict[str, list[tuple[float, str, str, str, tuple[str, ...], tuple[str, ...], dict[str, Any]]]] = {
    "kitchen": [
        (0.75, "coffee", "Coffee Maker", "coffee_maker", ("espresso machine",), ("brew",), {"power": False}),
        (0.7, "oven", "Oven", "oven", (), ("temperature", "preheat"), {"power": False, "target_temperature": 0}),
    ],
    "living_room": [
        (
            0.85,
            "tv",
            "TV",
            "media_player",
            ("television",),
            ("video", "audio", "volume"),
            {"power": False, "volume": 30, "playing": None},
        ),
        (0.6, "blinds", "Blinds", "cover", ("shades",), ("position",), {"position": 100}),
        (0.6, "vacuum", "Robot Vacuum", "vacuum", ("roomba",), (), {"cleaning": False}),
    ],
    "bedroom": [
        (0.5, "fan", "Ceiling Fan", "fan", (), ("speed",), {"power": False, "percentage": 0}),
        (
            0.4,
            "speaker",
            "Bedroom Speaker",
            "media_player",
            (),
            ("audio", "volume"),
            {"power": False, "volume": 25, "playing": None},
        ),
    ],
    "office": [(0.5, "heater", "Space Heater", "switch", (), (), {"power": False})],
    "garage": [(0.7, "door", "Garage Door", "cover", (), ("position",), {"position": 0})],
    "kids_room": [(0.5, "nightlight", "Night Light", "light", (), ("brightness",), {"power": False, "brightness": 0})],
}
# (time, wording, device domain the home needs or None)
ROUTINE_IDEAS = (
    ("06:30", "start brewing", "coffee_maker"), ("06:45", "make coffee", "coffee_maker"),
    ("07:00", "what is the weather", None), ("07:15", "what's the weather", None),
    ("07:30", "turn on the kitchen lights", "light"), ("08:00", "what time is it", None),
    ("18:00", "turn on the living room lights", "light"), ("18:30", "preheat the oven to 200 degrees", "oven"),
    ("19:00", "play music", None), ("20:00", "put the game on", "media_player"), ("21:00", "play some music", None),
    ("22:00", "turn off the living room lights", "light"), ("22:30", "turn off the lights", "light"),
    ("23:00", "turn off the {bed_device}", "light"), ("07:05", "coffee please", "coffee_maker"),
    ("21:30", "kill the lights in the living room", "light"), ("06:50", "do i need an umbrella", None),
)  # fmt: skip


def generate_homes(n: int, seed: int) -> list[Home]:
    """``n`` random homes; the same ``(n, seed)`` gives the same homes (home ``i`` does not depend on ``n``)."""
    return [_home(i, random.Random(f"home:{seed}:{i}")) for i in range(n)]


def _home(index: int, rng: random.Random) -> Home:
    surname = rng.choice(SURNAMES)
    town, state = rng.choice(CITIES)
    room_ids = ["kitchen", "living_room", "bedroom"]
    room_ids += rng.sample([r for r in ROOMS if r not in room_ids], rng.randint(0, 5))
    areas = [Area(id=r, name=ROOMS[r][0], floor=ROOMS[r][2], aliases=list(ROOMS[r][1])) for r in room_ids]
    devices: list[Device] = []
    used: set[str] = set()
    for r in room_ids:
        room_name = ROOMS[r][0]
        for _ in range(1 if rng.random() < 0.6 else 2):
            name, aliases = rng.choice(LIGHT_NAMES)
            name = name.format(room=room_name)
            if name.lower() in used:
                name, aliases = f"{room_name} Light", ()
            if name.lower() in used:
                continue
            used.add(name.lower())
            dimmable = rng.random() < 0.8
            devices.append(
                Device(
                    id=f"light.{r}_{len(devices)}",
                    name=name,
                    domain="light",
                    area=r,
                    aliases=[a for a in aliases if a not in used],
                    capabilities=["brightness"] if dimmable else [],
                    state={"power": rng.random() < 0.2, "brightness": 0},
                )
            )
            used.update(aliases)
        for p, suffix, label, domain, extra_aliases, caps, init in EXTRAS.get(r, []):
            if rng.random() < p and label.lower() not in used:
                used.add(label.lower())
                devices.append(
                    Device.model_validate(
                        {
                            "id": f"{domain}.{r}_{suffix}",
                            "name": label,
                            "domain": domain,
                            "area": r,
                            "aliases": list(extra_aliases),
                            "capabilities": list(caps),
                            "state": dict(init),
                        }
                    )
                )
    if rng.random() < 0.85:
        where = "living_room" if rng.random() < 0.6 else rng.choice(room_ids)
        devices.append(
            Device(
                id="climate.thermostat",
                name="Thermostat",
                domain="climate",
                area=where,
                capabilities=["temperature"],
                state={"power": True, "temperature": rng.randint(17, 23), "target_temperature": 20},
            )
        )
    endpoints = [Endpoint(id="ep.kitchen", type="speaker", area="kitchen", name="Kitchen Speaker")]
    endpoints.append(
        Endpoint(
            id="ep.living",
            type="screen" if rng.random() < 0.7 else "speaker",
            area="living_room",
            name="Living Room Screen",
        )
    )
    for r in rng.sample(room_ids[2:], min(len(room_ids) - 2, rng.randint(1, 3))):
        endpoints.append(Endpoint(id=f"ep.{r}", type="speaker", area=r, name=f"{ROOMS[r][0]} Speaker"))
    home_id = f"h{index:03d}_{surname.lower()}"
    people = [
        _person(home_id, name, endpoints, devices, f"{town}, {state}", rng)
        for name in rng.sample(FIRST_NAMES, rng.choice((1, 2, 2, 3, 3, 4)))
    ]
    return Home(
        id=home_id,
        name=f"The {surname} home",
        city=f"{town}, {state}",
        timezone=rng.choice(TIMEZONES),
        areas=areas,
        devices=devices,
        endpoints=endpoints,
        people=people,
    )


def _person(
    home_id: str, name: str, endpoints: list[Endpoint], devices: list[Device], city: str, rng: random.Random
) -> Person:
    mine = rng.sample(endpoints, rng.randint(1, len(endpoints)))
    habits = {}
    for key, values in (("music_genre", GENRES), ("team", TEAMS), ("cuisine", CUISINES)):
        if rng.random() < 0.55:
            habits[key] = rng.choice(values)
    own_city = city if rng.random() < 0.75 else ", ".join(rng.choice(CITIES))
    bed_device = next((d.name.lower() for d in devices if d.area == "bedroom"), "lights")
    domains = {d.domain for d in devices}
    ideas = [(at, say) for at, say, need in ROUTINE_IDEAS if need is None or need in domains]
    routines = [
        Routine(at=at, say=say.format(bed_device=bed_device), probability=rng.uniform(0.5, 0.95))
        for at, say in rng.sample(ideas, rng.randint(0, 3))
    ]
    return Person(
        id=f"{home_id}.{name.lower()}",
        name=name,
        endpoints=[e.id for e in mine],
        habits=habits,
        routines=sorted(routines, key=lambda r: r.at),
        city=own_city,
    )
