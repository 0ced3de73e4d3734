from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selflearn import ids
from selflearn.home import SHIPPED_HOMES_DIR, load_home
from selflearn.sim.homes import generate_homes

HOSTILE = [
    "..",
    ".",
    "../x",
    "../../etc",
    "x/../maple.ben",
    "/etc/passwd",
    "\\\\server\\share",
    "a\\b",
    "C:\\x",
    "a\x00b",
    "",
    ".hidden",
    "trailing.",
    "a..b",
    "x" * (ids.MAX_LENGTH + 1),
    "maple.ben\n",
    "mäple",
    " maple.ben",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_ids_are_refused_with_a_reason(value: str) -> None:
    reason = ids.problem(value)
    assert reason
    with pytest.raises(ids.InvalidId) as e:
        ids.check(value, "user")
    assert str(e.value).startswith("user ") and str(e.value).endswith("is not a valid id: " + reason)
    assert "\n" not in str(e.value)


def test_every_id_the_shipped_and_generated_homes_use_is_valid() -> None:
    homes = [load_home(p) for p in sorted(SHIPPED_HOMES_DIR.glob("*.yaml"))] + generate_homes(40, seed=3)
    seen = [h.id for h in homes]
    for h in homes:
        seen += [p.id for p in h.people] + [e.id for e in h.endpoints] + [d.id for d in h.devices]
        seen.append(f"{h.id}.guest")  # the simulator's guest
    assert {"maple.ben", "ep.bedroom_speaker"} <= set(seen)
    assert [s for s in seen if not ids.is_valid(s)] == []
    assert ids.is_valid("h003_marsh.emil") and ids.is_valid("00001-20261207T112233")


def test_child_path_stays_under_its_root(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    root.mkdir()
    assert ids.child_path(root, "personal", "maple.ben") == root / "personal" / "maple.ben"
    for value in HOSTILE:
        with pytest.raises(ids.InvalidId):
            ids.child_path(root, "personal", value)
    (root / "link").symlink_to(tmp_path)  # a planted symlink may not lead out either
    with pytest.raises(ids.InvalidId, match="leaves"):
        ids.child_path(root, "link", "x")
    assert not any(p for p in tmp_path.iterdir() if p.name != "artifacts")
    assert os.listdir(root) == ["link"]


def test_mention_matches_the_exact_id_only() -> None:
    text = b'{"user_id":"h003_marsh.emil"} h003_marsh.victor xh003_marsh "h003_marsh" h003_marsh. end'
    assert len(ids.mention("h003_marsh").findall(text)) == 2


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.sampled_from("a.b/\\-_:@ \x00~é"), max_size=12), min_size=1, max_size=3))
def test_child_path_either_refuses_or_stays_under_root(parts: list[str]) -> None:
    root = Path("/srv/selflearn/artifacts")
    try:
        path = ids.child_path(root, *parts)
    except ids.InvalidId:
        assert not all(ids.is_valid(p) for p in parts)  # no symlinks under this root: only a bad id is refused
        return
    assert all(ids.is_valid(p) for p in parts)
    assert path.resolve().is_relative_to(root.resolve()) and path.parts[-len(parts) :] == tuple(parts)
