from __future__ import annotations

from selflearn.home import shipped_homes
from selflearn.runtime.context import Candidate
from selflearn.runtime.resolve import Resolver

HOMES = {h.id: h for h in shipped_homes()}
MAPLE, OAK = HOMES["maple_house"], HOMES["oak_manor"]


def resolve(slots: dict, *, home=MAPLE, ep: str = "ep.kitchen_speaker", intent: str = "HassTurnOn"):  # type: ignore[no-untyped-def]
    return Resolver(home).resolve(Candidate(intent, slots, 0.9), endpoint=home.endpoint(ep))


def test_fuzzy_and_phonetic_names() -> None:
    r = Resolver(MAPLE)
    assert r.match("bed side lamp")[0][0] == "light.bedroom_lamp"
    assert r.match("bedsite lamp")[0][0] == "light.bedroom_lamp"
    assert r.match("the roomba")[0][0] == "vacuum.robot"
    assert resolve({"name": "desk lamb"}).devices == ["light.office_desk"]


def test_no_such_device_is_explicit() -> None:
    out = resolve({"name": "blender"})
    assert out.status == "no_entity" and out.missing == "blender" and out.confidence < 0.78
    assert resolve({"name": "big light"}).status == "no_entity"


def test_area_and_domain_select_devices() -> None:
    out = resolve({"area": "kitchen", "domain": "light"})
    assert sorted(out.devices) == ["light.kitchen_ceiling", "light.kitchen_island"]
    assert resolve({"area": "garage", "domain": "fan"}).status == "no_entity"


def test_shared_name_resolves_to_the_speakers_room() -> None:
    assert resolve({"name": "light.den_lamp"}, home=OAK, ep="ep.kids_speaker").devices == ["light.kids_lamp"]
    assert resolve({"name": "light.den_lamp"}, home=OAK, ep="ep.guest_speaker").devices == ["light.guest_lamp"]


def test_device_free_intents_need_no_device() -> None:
    assert resolve({"city": "Paris"}, intent="WeatherIn").status == "ok"


def test_a_room_said_as_a_name_means_its_lights() -> None:
    assert sorted(resolve({"name": "kitchen"}).devices) == ["light.kitchen_ceiling", "light.kitchen_island"]
    assert resolve({"name": "garage door", "domain": "lock"}).devices == ["lock.garage_door"]
