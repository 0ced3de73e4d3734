from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl

from selflearn.artifacts import ArtifactStore
from selflearn.controls import rule_frame
from selflearn.home import SHIPPED_HOMES_DIR, load_home
from selflearn.learners.evidence import rule_evidence
from selflearn.learners.learn import LearnConfig, learn
from selflearn.learners.mining import MiningConfig, RewriteTables
from selflearn.learners.signals import DefectSignals
from selflearn.runtime.rewrites import GLOBAL_TABLE, REWRITE_SCHEMA, read_global, write_tables
from selflearn.runtime.runtime import Runtime
from selflearn.store.logview import LogView
from test_learn import maple_repairs, maple_turn, repairs

DAY = 86_400.0
EVIDENCE = ["source", "target", "distinct_homes", "shadow_fixes", "shadow_breaks"]


def test_learn_records_each_rules_shadow_fixes_breaks_and_homes(tmp_path: Path) -> None:
    """Day 0 teaches rule A ("tern on" -> "turn on", a real repair) and rule B (a working "turn off the kitchen
    light" -> the desk lamp); on the held-out day A fixes 4 failing turns and B breaks 3 clean ones."""
    maple = load_home(SHIPPED_HOMES_DIR / "maple_house.yaml")
    runtime = Runtime(maple)
    training = maple_repairs(runtime, "tern on the kitchen light", "turn on the kitchen light")
    lamp = maple_repairs(runtime, "turn off the kitchen light", "turn off the desk lamp", barge_in=True)
    training += [t.model_copy(update={"turn_id": f"b-{t.turn_id}", "ts": t.ts + timedelta(hours=1)}) for t in lamp]
    held = [maple_turn(runtime, f"v{u}", DAY + 600 * u, "tern on the kitchen light") for u in range(4)]
    held += [maple_turn(runtime, f"w{u}", DAY + 7200 + 600 * u, "turn off the kitchen light") for u in range(3)]
    store = ArtifactStore(tmp_path)
    config = LearnConfig(mining=MiningConfig(min_homes=1, hygiene=False))
    report = learn(LogView.from_records(training + held), store, config=config, homes=[maple])
    assert report.published and report.shadow is not None and report.shadow.replayed == 7
    assert (report.shadow.would_fix, report.shadow.would_break) == (4.0, 3.0)
    root = store.current_dir()
    assert root is not None
    assert read_global(root).select(EVIDENCE).sort("source").rows() == [
        ("tern on the kitchen light", "turn on the kitchen light", 1, 4, 0),
        ("turn off the kitchen light", "turn off the desk lamp", 1, 0, 3),
    ]


def test_distinct_homes_counts_the_homes_behind_a_rule_and_no_replay_leaves_shadow_unknown(tmp_path: Path) -> None:
    """Six people in six homes repair "lights of" (each person is their own home here); without home
    configurations the shadow check is the log-only estimate, which is not per rule: fixes/breaks stay null."""
    turns = repairs(range(6), 0) + repairs(range(3), 3600) + repairs(range(6), DAY)
    store = ArtifactStore(tmp_path)
    report = learn(LogView.from_records(turns), store)
    assert report.published and report.shadow is not None and report.shadow.log_only == report.shadow.turns
    root = store.current_dir()
    assert root is not None
    assert read_global(root).select(EVIDENCE).rows() == [("lights of", "lights off", 6, None, None)]
    tables = RewriteTables.load(root)
    assert tables.personal_table["distinct_homes"].to_list() == [1] * 6
    view = LogView.from_records(turns)
    scored = DefectSignals().score_frame(view.turns(), view.feedback())
    replayed = pl.DataFrame({"turn_id": ["x"], "replayed": [True], "would_fix": [1.0], "would_break": [0.0],
                             "rule_id": [None]}, schema_overrides={"rule_id": pl.String})  # fmt: skip
    unknown = rule_evidence(tables, scored, None, [], MiningConfig(), (RewriteTables(), replayed))
    assert unknown.global_table.select(EVIDENCE).rows() == [("lights of", "lights off", 6, None, None)]  # no candidate


def test_a_set_written_before_the_evidence_loads_with_nulls(tmp_path: Path) -> None:
    rule = {"source": "lights of", "target": "lights off", "probability": 1.0, "support": 9, "distinct_users": 6}
    old = pl.DataFrame([rule | {"layer": "global"}], schema=REWRITE_SCHEMA)
    (tmp_path / GLOBAL_TABLE).parent.mkdir(parents=True)
    old.write_parquet(tmp_path / GLOBAL_TABLE)  # as sets were written before: no evidence columns
    assert pl.read_parquet(tmp_path / GLOBAL_TABLE).columns == list(REWRITE_SCHEMA)
    loaded = RewriteTables.load(tmp_path)
    assert rule_frame(loaded).select(EVIDENCE).rows() == [("lights of", "lights off", None, None, None)]
    write_tables(tmp_path, loaded.global_table, loaded.personal_table)  # and written again, still readable
    assert read_global(tmp_path)["support"].to_list() == [9]
