from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from selflearn import paths
from selflearn.artifacts import ArtifactStore
from selflearn.cli.main import app
from selflearn.runtime.feedback import PendingRewrites, pending_root
from selflearn.runtime.rewrites import REWRITE_SCHEMA, empty_table, write_tables
from selflearn.schema import Feedback, Gold, Preference, Turn
from selflearn.store.logstore import Store

runner = CliRunner()
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)

A, PREFIX_USER, B = "h003_marsh", "h003_marsh.emil", "maple.ana"  # PREFIX_USER's id starts with A's
PHRASES = {A: "zebra quokka lantern", PREFIX_USER: "copper falcon meadow", B: "purple walrus kettle"}
SHARED = "turn on the kitchen light"  # said by all three: not A's alone, so it stays


def _records(user: str) -> list[str]:
    """JSON lines of turns, gold, feedback for a user: their own phrase twice, the shared one once."""
    lines = []
    for i, text in enumerate([PHRASES[user], PHRASES[user] + " please", SHARED]):
        turn_id = f"t-{user}-{i}"
        turn = Turn(
            turn_id=turn_id,
            dialogue_id=f"d-{user}",
            session_id=f"s-{user}",
            user_id=user,
            home_id="h003",
            device_id="ep.kitchen_speaker",
            device_type="speaker",
            ts=T0 + timedelta(seconds=10 * i),
            asr_text=text,
            asr_confidence=0.9,
            result_status="no_match" if i < 2 else "success",
            response_latency_ms=100.0,
        )
        gold = Gold(turn_id=turn_id, true_text=text, failure_point="nlu", goal_id=f"g-{user}", goal_success=False)
        lines += [turn.model_dump_json(), gold.model_dump_json()]
    fb = Feedback(
        feedback_id=f"f-{user}",
        turn_id=f"t-{user}-0",
        user_id=user,
        ts=T0 + timedelta(seconds=5),
        kind="correction",
        correction_text=f"no I meant {PHRASES[user]} mode",
    )
    return [*lines, fb.model_dump_json()]


def _quarantined(user_json: str, user: str) -> str:
    """A turn line with a negative latency (quarantined) whose user id is spelled ``user_json`` (maybe escaped)."""
    row = json.loads(Turn.model_validate_json(_records(user)[0]).model_dump_json())
    row["response_latency_ms"] = -1
    row["turn_id"] = f"q-{user}"
    return json.dumps(row).replace(json.dumps(user), user_json)


def _files_holding(root: Path, needle: bytes) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes())


def test_forget_leaves_no_byte_of_the_user_and_touches_nobody_else(tmp_path: Path) -> None:
    home = paths.data_dir()
    logs = tmp_path / "incoming.jsonl"  # outside the data dir: the user's own input file is not ours to change
    escaped = '"h003\\u005fmarsh"'  # A's id JSON-escaped: the same id once decoded
    lines = [*_records(A), *_records(PREFIX_USER), *_records(B)]
    lines += [
        _quarantined(escaped, A),
        _quarantined(json.dumps(PREFIX_USER), PREFIX_USER),
        _quarantined(json.dumps(B), B),
    ]
    logs.write_text("\n".join(lines) + "\n")
    with Store() as store:
        report = store.ingest(logs)
        assert report.quarantined == 3 and report.ingested == 3 * 7
        for user in (A, PREFIX_USER, B):
            store.put_preference(
                Preference(user_id=user, kind="phrase", key=f"{PHRASES[user]} time", value="lights on", ts=T0)
            )
    artifacts = ArtifactStore()
    personal = pl.DataFrame(
        [
            {"source": PHRASES[u], "target": SHARED, "probability": 1.0, "support": 2, "distinct_users": 1}
            | {"source_intent": None, "target_intent": "HassTurnOn", "layer": "personal", "user_id": u}
            for u in (A, PREFIX_USER, B)
        ],
        schema=REWRITE_SCHEMA,
    )

    def build(root: Path) -> None:
        write_tables(root, empty_table(), personal)

    for _ in range(2):  # two versions, both with A's folder
        artifacts.publish(build, meta={})
    stale = artifacts.tmp_dir / "999999999-dead"  # a build whose publisher died (no such pid)
    write_tables(stale, empty_table(), personal)
    pending = PendingRewrites(pending_root())
    for user in (A, PREFIX_USER, B):
        pending.add(user, PHRASES[user], SHARED, T0)

    for user in (A, PREFIX_USER, B):  # the test can fail: every phrase is in some file's bytes before
        assert _files_holding(home, PHRASES[user].encode()), user
    assert any(p.suffix == ".duckdb" for p in map(Path, _files_holding(home, PHRASES[A].encode())))

    result = runner.invoke(app, ["forget", A, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["verified"] and out["left"] == [] and out["phrases"] >= 3
    assert out["deleted"]["turns"] == 3 and out["deleted"]["gold"] == 3 and out["deleted"]["feedback"] == 1
    assert out["deleted"]["preferences"] == 1 and out["deleted"]["quarantine"] == 1
    assert out["deleted"]["personal_artifacts"] == 2 and out["deleted"]["pending_rewrites"] == 1

    assert _files_holding(home, PHRASES[A].encode()) == []  # raw bytes of every file under the data dir
    assert _files_holding(home, b"zebra quokka") == []
    for user in (PREFIX_USER, B):
        assert _files_holding(home, PHRASES[user].encode()), user
    with Store() as store:
        for user in (PREFIX_USER, B):
            assert store.user_rows(user) == {"turns": 3, "feedback": 1, "preferences": 1}
        assert store.user_rows(A) == {"turns": 0, "feedback": 0, "preferences": 0}
        gold_ids = set(store.gold()["turn_id"])
        assert not any(t.startswith(f"t-{A}-") for t in gold_ids) and f"t-{PREFIX_USER}-0" in gold_ids
        assert len(store.logs().turns().filter(pl.col("asr_text") == SHARED)) == 2
    for version in artifacts.versions():
        folders = sorted(p.name for p in (artifacts.versions_dir / version.version / "personal").iterdir())
        assert folders == [PREFIX_USER, B]
    assert not stale.exists()
    assert sorted(p.name for p in (pending_root() / "personal").iterdir()) == [PREFIX_USER, B]
    quarantine = (home / "logs.quarantine.jsonl").read_text()
    assert len(quarantine.splitlines()) == 2 and PREFIX_USER in quarantine and B in quarantine
    assert logs.read_text().count(PHRASES[A]) > 0  # files outside the data dir are not touched


def test_forget_refuses_an_invalid_id_before_deleting_anything(tmp_path: Path) -> None:
    with Store() as store:
        store.add(turns=[Turn.model_validate_json(_records(A)[0])])
    artifacts = ArtifactStore()
    artifacts.publish(lambda root: (root / "personal" / "etc").mkdir(parents=True), meta={})
    for hostile in ("../../etc", "..", "/etc", "h003_marsh/..", ""):
        result = runner.invoke(app, ["forget", hostile])
        assert result.exit_code == 2, (hostile, result.output)
        assert "not a valid id" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    with Store() as store:
        assert store.user_rows(A)["turns"] == 1
    assert (artifacts.current_dir() / "personal" / "etc").is_dir()  # type: ignore[operator]
