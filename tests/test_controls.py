"""rewrite/controls.py: disabled rules stop firing at once and stay out of later learning runs; pinned ones stay."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from selflearn.artifacts import ArtifactStore
from selflearn.controls import Control, Controls, rule_frame, rule_id
from selflearn.errors import SelflearnError
from selflearn.home import SHIPPED_HOMES_DIR, load_home
from selflearn.learners.learn import learn
from selflearn.learners.mining import RewriteTables
from selflearn.runtime.rewriter import LiveRewriter
from selflearn.runtime.rewrites import read_global, read_personal
from selflearn.store.logview import LogView
from test_learn import repairs

DAY = 86_400.0


def control(rule: dict[str, object], action: str, home: str | None = None) -> Control:
    rid = rule_id(str(rule["kind"]), rule["user_id"], str(rule["source"]), str(rule["target"]))  # type: ignore[arg-type]
    return Control(rid, action, home, rule, "tok", datetime.now(UTC).isoformat())  # type: ignore[arg-type]


def published(tmp_path: Path, turns: list) -> tuple[ArtifactStore, pl.DataFrame]:  # type: ignore[type-arg]
    store = ArtifactStore(tmp_path)
    learn(LogView.from_records(turns), store)
    root = store.current_dir()
    assert root is not None
    return store, rule_frame(RewriteTables.load(root))


def test_learn_leaves_out_disabled_rules_and_keeps_pinned_ones(tmp_path: Path) -> None:
    everyone = repairs(range(6), 0) + repairs(range(3), 3600) + repairs(range(6), DAY)
    store, rules = published(tmp_path, everyone)
    glob = rules.filter(pl.col("kind") == "global").to_dicts()[0]
    mine = rules.filter((pl.col("kind") == "personal") & (pl.col("user_id") == "u0")).to_dicts()[0]
    controls = Controls(tmp_path)
    controls.set(control(glob, "disable"))
    controls.set(control(mine, "pin"))
    # the next run's logs no longer support u0's rule (u0 stopped repairing) but still support the global one
    report = learn(LogView.from_records(repairs(range(1, 6), 0) + repairs(range(1, 6), DAY)), store)
    root = store.current_dir()
    assert root is not None and report.published
    assert read_global(root).height == 0 and report.global_rewrites == 0
    assert read_personal(root, "u0").select("source", "target").rows() == [("lights of", "lights off")]
    assert read_personal(root, "u1").height == 1  # everyone else's rules as mined
    controls.clear(control(glob, "disable").rule_id, None)
    learn(LogView.from_records(everyone), store)
    assert read_global(store.current_dir()).height == 1  # type: ignore[arg-type]


def test_a_disabled_rule_stops_firing_at_once_in_its_scope(tmp_path: Path) -> None:
    store, rules = published(tmp_path, repairs(range(6), 0) + repairs(range(6), DAY))
    home = load_home(SHIPPED_HOMES_DIR / "maple_house.yaml")
    endpoint = home.endpoints[0]
    live = LiveRewriter(store, check_seconds=3600)  # no pointer re-check: the controls alone must act

    def heard() -> str | None:
        found = live.rewrite("lights of", user_id="u9", home=home, endpoint=endpoint, now=datetime.now(UTC))
        return None if found is None else found.text

    assert heard() == "lights off"
    glob = rules.filter(pl.col("kind") == "global").to_dicts()[0]
    controls = Controls(tmp_path)
    controls.set(control(glob, "disable", home="another_home"))
    assert heard() == "lights off"  # another home's choice
    controls.set(control(glob, "disable", home=home.id))
    assert heard() is None
    assert controls.clear(control(glob, "disable").rule_id, home.id)
    assert heard() == "lights off"


def test_controls_file_is_checked(tmp_path: Path) -> None:
    (tmp_path / "controls.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(SelflearnError, match="damaged"):
        Controls(tmp_path).all()


def test_forget_user_drops_decisions_about_their_rules(tmp_path: Path) -> None:
    controls = Controls(tmp_path)
    rule = {"kind": "personal", "user_id": "u1", "source": "a", "target": "b"}
    controls.set(control(rule, "pin"))
    controls.set(control(rule | {"user_id": "u2"}, "disable"))
    assert controls.forget_user("u1") == 1
    assert [c.rule["user_id"] for c in controls.all()] == ["u2"]
