from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from selflearn.home import HomeError, UnsafeHomeError, dump_home, find_home, load_home, shipped_homes

SHIPPED = sorted((Path(__file__).parents[1] / "src" / "selflearn" / "data" / "homes").glob("*.yaml"))


def test_shipped_homes_load() -> None:
    homes = shipped_homes()
    assert len(homes) == len(SHIPPED) >= 1
    for home in homes:
        assert home.devices and home.endpoints and home.areas
        for person in home.people:
            for endpoint in person.endpoints:
                assert home.endpoint(endpoint).id == endpoint


def test_dump_and_load_round_trip(tmp_path: Path) -> None:
    home = shipped_homes()[0]
    dump_home(home, tmp_path / "h.yaml")
    assert load_home(tmp_path / "h.yaml") == home


def _broken(tmp_path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(SHIPPED[0].read_text(encoding="utf-8"))
    edit(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["devices"][0].update(area="attic"), "unknown area"),
        (lambda d: d["endpoints"][0].update(area="nowhere"), "unknown area"),
        (lambda d: d["people"][0]["endpoints"].append("ep.missing"), "unknown endpoint"),
        (lambda d: d["devices"].append(dict(d["devices"][0])), "duplicate device"),
        (lambda d: d["devices"][0].update(domain="teleporter"), "domain"),
        (lambda d: d.update(surprise=True), "surprise"),
    ],
)
def test_bad_homes_give_home_error(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(HomeError, match=message):
        load_home(_broken(tmp_path, edit))


def test_unreadable_home_gives_home_error(tmp_path: Path) -> None:
    with pytest.raises(HomeError):
        load_home(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("areas: [unclosed", encoding="utf-8")
    with pytest.raises(HomeError):
        load_home(tmp_path / "bad.yaml")
    home = shipped_homes()[0]
    with pytest.raises(HomeError):
        home.endpoint("ep.nope")
    with pytest.raises(HomeError):
        home.person("nobody")


def test_find_home_by_id_or_path(tmp_path: Path) -> None:
    shipped = shipped_homes()[0]
    assert find_home(shipped.id) == shipped
    path = tmp_path / "mine.yaml"
    dump_home(shipped, path)
    assert find_home(path) == shipped
    with pytest.raises(HomeError, match="unknown home 'nowhere'"):
        find_home("nowhere")


def _billion_laughs() -> str:
    """The classic: nine levels of nine aliases each, about 10^9 values once expanded, in 0.5 KB."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join([*lines, "areas: *i", "devices: []", "endpoints: []", "id: lol"]) + "\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_billion_laughs(), "aliases are expanded"),
        ("id: deep\nareas: " + "[" * 200_000 + "]" * 200_000 + "\n", "levels deep"),
        ("id: deep\nareas:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(600)), "levels deep"),
        ("id: big\nareas: []\n" + "#" * (1024 * 1024) + "\n", "bytes"),
    ],
    ids=["billion-laughs", "deep-flow", "deep-block", "oversize"],
)
def test_hostile_home_yaml_fails_fast_with_little_memory(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(UnsafeHomeError, match=message) as error:
            load_home(path)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 1.0
    assert peak < 50 * 1024 * 1024
    assert "\n" not in str(error.value)
    with pytest.raises(HomeError):  # the type callers already handle
        find_home(path)


def test_home_with_a_few_aliases_still_loads(tmp_path: Path) -> None:
    home = shipped_homes()[0]
    data = home.model_dump(exclude_defaults=True)
    shared = [1, 2]
    data["people"] = [{**p, "routines": [{**r, "days": shared} for r in p.get("routines", [])]} for p in data["people"]]
    path = tmp_path / "aliases.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")  # the shared list becomes an alias
    assert "*id" in path.read_text(encoding="utf-8")
    loaded = load_home(path)
    assert all(r.days == [1, 2] for p in loaded.people for r in p.routines)
