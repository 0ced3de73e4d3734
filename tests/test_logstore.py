from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selflearn.schema import ARROW_SCHEMAS, Feedback, Gold, Preference, Turn, to_arrow
from selflearn.sim import logsample
from selflearn.store.connection import StoreError
from selflearn.store.ingest import IngestError
from selflearn.store.logstore import Store, gold_path
from selflearn.store.logview import LogView
from selflearn.store.table_checks import predicate

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def turn(i: int, user: str = "u1", **kw: object) -> Turn:
    fields: dict[str, object] = dict(
        turn_id=f"t{i}",
        dialogue_id=f"d{i // 2}",
        session_id=f"s{i // 4}",
        user_id=user,
        home_id="h1" if user != "u3" else "h2",
        device_id="ep.kitchen",
        device_type="speaker",
        ts=T0 + timedelta(minutes=i),
        asr_text=f"turn on light {i}",
        asr_confidence=0.9,
        result_status="success",
        response_latency_ms=150.0,
        nlu_slots={"name": "kitchen light"},
        trace={"nlu": {"top": [["HassTurnOn", 0.9]]}},
    )
    fields.update(kw)
    return Turn.model_validate(fields)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "logs.duckdb")
    yield s
    s.close()


def _line(t: Turn, *, drop: str | None = None, **changes: object) -> bytes:
    row = json.loads(t.model_dump_json())
    row.update(changes)
    if drop:
        del row[drop]
    return json.dumps(row).encode()


def _quarantine(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_default_location_follows_data_dir(_isolated_data_dir: Path) -> None:
    with Store() as s:
        assert s.path == _isolated_data_dir / "logs.duckdb"
    assert (_isolated_data_dir / "logs.duckdb").exists()


def test_db_env_overrides_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFLEARN_DB", str(tmp_path / "elsewhere.duckdb"))
    with Store() as s:
        assert s.path == tmp_path / "elsewhere.duckdb"


def test_a_reader_never_creates_a_store(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "x.duckdb"
    with pytest.raises(StoreError, match=f"no store at {missing}"):
        Store(missing, create=False)
    assert not missing.parent.exists()
    Store(missing).close()  # a writer creates it ...
    with Store(missing, create=False) as s:  # ... and then readers open it
        assert len(s.logs()) == 0


def test_a_closed_store_holds_no_duckdb_object(tmp_path: Path) -> None:
    """Something may keep a closed store alive until exit (FastAPI caches the service's route endpoints): its
    connections must be gone by then, or nanobind reports them as leaked at interpreter shutdown."""
    store = Store(tmp_path / "logs.duckdb")
    store.gold()  # opens the gold connection too
    store.close()
    assert not [v for v in vars(store).values() if isinstance(v, duckdb.DuckDBPyConnection)]
    with pytest.raises(StoreError, match="is closed"):
        store.logs()
    store.close()  # closing twice is harmless


BAD_LINES: dict[str, tuple[bytes, str]] = {
    "bad_json": (b'{"turn_id": "x", ', "bad JSON"),
    "not_object": (b"[1, 2, 3]", "object"),
    "wrong_type": (_line(turn(100), asr_confidence="very sure"), "asr_confidence"),
    "missing_field": (_line(turn(101), drop="user_id"), "user_id"),
    "negative_latency": (_line(turn(102), response_latency_ms=-3.0), "response_latency_ms"),
    "future_ts": (_line(turn(103), ts="3000-01-01T00:00:00Z"), "ts"),
    "naive_ts": (_line(turn(104), ts="2026-01-01T00:00:00"), "ts"),
    "oversize_text": (_line(turn(105), asr_text="x" * 10_001), "asr_text"),
    "invalid_utf8": (_line(turn(106)).replace(b"turn on", b"turn \xff\xfe on"), "UTF-8"),
    "unknown_enum": (_line(turn(107), result_status="exploded"), "result_status"),
    "extra_field": (_line(turn(108), mood="grumpy"), "mood"),
    "bad_json_field": (_line(turn(109), nlu_slots='{"name": '), "nlu_slots: bad JSON"),
    "confidence_range": (_line(turn(110), asr_confidence=1.5), "asr_confidence"),
    "deep_line": (b'{"trace":' + b"[" * 1_000 + b"]" * 1_000 + b"}", "nested 1001 levels deep"),
    "deep_json_field": (
        _line(turn(111), trace={}).replace(b'"trace": {}', b'"trace":{"a":' + b"[" * 40 + b"]" * 40 + b"}"),
        "deep",
    ),
    "deep_json_string": (_line(turn(112), trace='{"a":' + "[" * 5_000 + "]" * 5_000 + "}"), "trace: JSON nested"),
    "string_bool": (_line(turn(113), barge_in="yes"), "barge_in"),
    "int_bool": (_line(turn(114), barge_in=1), "barge_in"),
    "duplicate_key": (_line(turn(115))[:-1] + b',"barge_in":true}', "duplicate key 'barge_in'"),
    "nested_duplicate_key": (_line(turn(116), trace={}).replace(b'"trace": {}', b'"trace":{"a":1,"a":2}'), "duplicate"),
    "nan": (_line(turn(117), nlu_slots={}).replace(b'"nlu_slots": {}', b'"nlu_slots":{"x":NaN}'), "NaN"),
    "huge_int": (_line(turn(118), nlu_slots={"n": 10**20}), "64-bit"),
    "overflow_float": (_line(turn(119), nlu_slots={}).replace(b'"nlu_slots": {}', b'"nlu_slots":{"x":1e999}'), "range"),
    "huge_json_value": (_line(turn(120), device_state_snapshot={"x": "y" * 100_000}), "device_state_snapshot"),
    "long_line": (_line(turn(121), asr_text="z" * 5_000_000), "bytes (limit"),
}


@pytest.mark.parametrize("kind", sorted(BAD_LINES))
def test_every_corruption_kind_is_quarantined_with_reason(store: Store, tmp_path: Path, kind: str) -> None:
    bad, reason_part = BAD_LINES[kind]
    good = [turn(i).model_dump_json().encode() for i in range(3)]
    src = tmp_path / "turns_x.jsonl"
    src.write_bytes(b"\n".join([good[0], bad, good[1], good[2]]) + b"\n")
    q = tmp_path / "q.jsonl"
    report = store.ingest([src], quarantine=q)
    assert (report.read, report.ingested, report.duplicates, report.quarantined) == (4, 3, 0, 1)
    [entry] = _quarantine(q)
    assert entry["source"] == str(src)
    assert entry["line"] == 2
    assert reason_part in entry["reason"]
    assert entry["raw"]
    assert store.counts()["turns"] == 3


def test_jsonl_corruption_injector_nothing_lost(store: Store, tmp_path: Path) -> None:
    log = logsample.generate(600, seed=3)
    lines = [t.model_dump_json().encode() for t in log.turns]
    bad, counts = logsample.corrupt_jsonl(lines, rate=0.05, seed=3)
    assert set(counts) == set(logsample.JSONL_CORRUPTIONS)
    src = tmp_path / "turns.jsonl"
    src.write_bytes(b"\n".join(bad) + b"\n")
    q = tmp_path / "q.jsonl"
    report = store.ingest([src], quarantine=q)
    injected = sum(v for k, v in counts.items() if k != "duplicate")
    assert report.read == len(bad)
    assert report.quarantined == injected == len(_quarantine(q))
    assert report.duplicates == counts["duplicate"]
    assert report.read == report.ingested + report.duplicates + report.quarantined
    assert store.counts()["turns"] == report.ingested == 600 - injected


def test_parquet_corruptions_vectorised_and_nothing_lost(store: Store, tmp_path: Path) -> None:
    log = logsample.generate(800, seed=4)
    table, counts = logsample.corrupt_turn_table(to_arrow(log.turns, Turn), rate=0.05, seed=4)
    src = tmp_path / "turns.parquet"
    pq.write_table(table, src)
    q = tmp_path / "q.jsonl"
    report = store.ingest([src], quarantine=q, batch_rows=300)
    injected = sum(v for k, v in counts.items() if k != "duplicate")
    entries = _quarantine(q)
    assert report.quarantined == injected == len(entries)
    assert report.duplicates == counts["duplicate"]
    assert report.read == table.num_rows == report.ingested + report.duplicates + report.quarantined
    assert all(e["reason"] and e["line"] >= 1 for e in entries)
    # line numbers are 1-based row positions in the file, across batches
    rows = table.to_pylist()
    for e in entries:
        assert json.loads(e["raw"])["turn_id"] == rows[e["line"] - 1]["turn_id"]


HOSTILE_IDS = ["..", "../../etc", "x/../maple.ben", "/abs", "a\\b", ".hidden", "a\x00b", "", "x" * 129, "maple.ben\n"]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_hostile_ids_are_quarantined_with_a_clear_reason(store: Store, tmp_path: Path, fmt: str) -> None:
    good = [turn(0, user="maple.ben"), turn(1, user="h003_marsh.emil")]
    rows = to_arrow(good, Turn).to_pylist() if fmt == "parquet" else [json.loads(t.model_dump_json()) for t in good]
    for i, hostile in enumerate(HOSTILE_IDS):
        field = ("user_id", "home_id", "device_id")[i % 3]
        rows.append({**rows[0], "turn_id": f"bad{i}", field: hostile})
    src = tmp_path / f"turns.{fmt}"
    if fmt == "jsonl":
        src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows, schema=ARROW_SCHEMAS[Turn]), src)
    q = tmp_path / "q.jsonl"
    report = store.ingest([src], quarantine=q)
    assert (report.ingested, report.quarantined) == (2, len(HOSTILE_IDS))
    for entry in _quarantine(q):
        reason = str(entry["reason"])
        assert "not a valid id" in reason or "at least 1 character" in reason or "at most 128" in reason, reason
        assert "\n" not in reason
    assert sorted(store.logs().turns()["user_id"]) == ["h003_marsh.emil", "maple.ben"]


def test_parquet_with_wrong_column_type_is_checked_row_by_row(store: Store, tmp_path: Path) -> None:
    turns = [turn(i) for i in range(4)]
    rows = [json.loads(t.model_dump_json()) for t in turns]
    for r in rows:
        for k in Turn.json_fields:
            r[k] = json.dumps(r[k])
        r["ts"] = T0
    rows[1]["asr_confidence"] = "high"
    for r in rows:
        r["asr_confidence"] = str(r["asr_confidence"])
    src = tmp_path / "turns.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    q = tmp_path / "q.jsonl"
    report = store.ingest([src], quarantine=q)
    assert (report.read, report.quarantined) == (4, 1)
    assert _quarantine(q)[0]["line"] == 2
    assert "asr_confidence" in _quarantine(q)[0]["reason"]


# Rows that the vectorised predicate accepts must be rows pydantic accepts: otherwise validation would not be real.
_turn_rows = st.fixed_dictionaries(
    {
        "asr_confidence": st.floats(min_value=-2, max_value=2) | st.sampled_from([math.nan, math.inf]) | st.none(),
        "response_latency_ms": st.floats(min_value=-10, max_value=700_000) | st.just(float("nan")),
        "result_status": st.sampled_from(["success", "failed", "exploded", ""]) | st.none(),
        "asr_text": st.text(max_size=30) | st.just("x" * 10_001) | st.none(),
        "turn_id": st.text(max_size=130) | st.none(),
        "nlu_slots": st.sampled_from(['{"a": 1}', "[]", "null", '{"a": ', " {}", '"x"', "{}", "NaN"]) | st.none(),
        "ts": st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(3000, 1, 1), timezones=st.just(UTC)),
        "schema_version": st.integers(min_value=-1, max_value=3),
        "explicit_feedback": st.sampled_from([None, "yes", "maybe"]),
        "user_id": st.sampled_from([*HOSTILE_IDS, "maple.ben", "h003_marsh.emil"]) | st.text(max_size=20),
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_turn_rows, min_size=1, max_size=8))
def test_vectorised_predicate_never_accepts_what_pydantic_rejects(changes: list[dict[str, object]]) -> None:
    base = to_arrow([turn(0)], Turn).to_pylist()[0]
    rows = [{**base, **c} for c in changes]
    schema = pa.schema([pa.field(f.name, f.type, True) for f in ARROW_SCHEMAS[Turn]])
    table = pa.Table.from_pylist(rows, schema=schema)
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone='UTC'")
    con.register("batch", table)
    flags = [r[0] for r in con.execute(f"SELECT ({predicate(Turn)}) IS TRUE FROM batch").fetchall()]
    for ok, row in zip(flags, table.to_pylist(), strict=True):
        if ok:
            Turn.model_validate(row)


def test_ingest_is_idempotent_and_dedups_within_a_file(store: Store, tmp_path: Path) -> None:
    turns = [turn(i) for i in range(10)]
    src = tmp_path / "turns.jsonl"
    src.write_bytes(b"".join(t.model_dump_json().encode() + b"\n" for t in turns + turns[:2]))
    first = store.ingest([src], quarantine=tmp_path / "q.jsonl")
    assert (first.read, first.ingested, first.duplicates) == (12, 10, 2)
    pq.write_table(to_arrow(turns, Turn), tmp_path / "turns.parquet")
    second = store.ingest([tmp_path], quarantine=tmp_path / "q.jsonl")
    assert (second.files, second.read, second.ingested, second.duplicates) == (2, 22, 0, 22)
    assert store.counts()["turns"] == 10
    store.add(turns=turns)
    assert store.counts()["turns"] == 10
    assert store.ingest(str(src), quarantine=tmp_path / "q.jsonl").duplicates == 12  # one path as a plain string


def test_kind_from_file_name_or_row_fields(store: Store, tmp_path: Path) -> None:
    t = turn(1)
    g = Gold(turn_id="t1", true_text="turn on light 1", failure_point="correct", goal_id="g1", goal_success=True)
    f = Feedback(feedback_id="f1", turn_id="t1", user_id="u1", ts=T0, kind="yes")
    p = Preference(user_id="u1", kind="team", value="Warriors", ts=T0)
    mixed = tmp_path / "export.jsonl"
    mixed.write_text("\n".join(r.model_dump_json() for r in (t, g, f, p)) + "\n" + '{"hello": 1}\n')
    q = tmp_path / "q.jsonl"
    report = store.ingest([mixed], quarantine=q)
    assert report.by_kind == {"turns": 1, "gold": 1, "feedback": 1, "preferences": 1}
    assert report.quarantined == 1 and "kind" in _quarantine(q)[0]["reason"]
    named = tmp_path / "gold_2026.jsonl"
    named.write_text(t.model_dump_json() + "\n")  # a turn in a gold file is not valid gold
    assert store.ingest([named], quarantine=q).quarantined == 1


def test_unknown_paths_raise(store: Store, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(IngestError):
        store.ingest([tmp_path / "missing.jsonl"])
    with pytest.raises(IngestError):
        store.ingest([tmp_path / "notes.txt"])


def test_gold_is_unreachable_from_logview(store: Store) -> None:
    store.add(
        turns=[turn(1)],
        gold=[Gold(turn_id="t1", true_text="x", failure_point="asr", goal_id="g", goal_success=False)],
    )
    assert gold_path(store.path).exists()
    assert store.gold().height == 1
    logs = store.logs()
    assert not hasattr(logs, "gold")
    with pytest.raises(duckdb.CatalogException):
        logs.sql("select * from gold")
    with pytest.raises(duckdb.Error):
        logs.sql(f"attach '{gold_path(store.path)}' as g")
    with pytest.raises(duckdb.Error):
        logs.sql(f"select * from read_parquet('{store.path}')")
    with pytest.raises(duckdb.Error):
        logs.sql("set enable_external_access = true")
    names = set(logs.sql("select table_name from information_schema.tables")["table_name"])
    assert names == {"turns", "feedback"}


def test_logview_queries(store: Store) -> None:
    store.add(turns=[turn(i) for i in range(8)] + [turn(i, user="u3") for i in range(8, 12)])
    store.add(feedback=[Feedback(feedback_id="f1", turn_id="t1", user_id="u1", ts=T0, kind="no")])
    logs = store.logs()
    all_turns = logs.turns()
    assert all_turns.columns == ARROW_SCHEMAS[Turn].names
    assert all_turns.height == 12 and all_turns["ts"].is_sorted()
    assert logs.turns(user_id="u3").height == 4
    assert logs.turns(home_id="h2").height == 4
    assert logs.turns(session_id="s0").height == 4
    assert set(logs.turns(dialogue_id="d1")["turn_id"]) == {"t2", "t3"}
    window = logs.turns(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=5))
    assert list(window["turn_id"]) == ["t2", "t3", "t4"]
    assert logs.feedback(user_id="u1").height == 1 and logs.feedback(user_id="u3").height == 0
    assert json.loads(all_turns["nlu_slots"][0]) == {"name": "kitchen light"}


def test_set_outcome_overwrites_only_the_outcome_of_that_turn_in_its_home(store: Store) -> None:
    store.add(turns=[turn(0), turn(1)])
    failed = turn(0).model_copy(
        update={"result_status": "failed", "response_text": "No such light", "trace": {"ha_result": {"success": False}}}
    )
    assert store.set_outcome(failed)
    assert store.turn("t0") == failed and store.turn("t1") == turn(1)
    assert not store.set_outcome(turn(7))  # not stored
    assert not store.set_outcome(failed.model_copy(update={"home_id": "h2"}))  # another home's id
    assert store.turn("t0") == failed


def test_logview_from_records_matches_store(store: Store) -> None:
    turns = [turn(i) for i in range(5)]
    store.add(turns=turns)
    assert LogView.from_records(turns).turns().equals(store.logs().turns())
    assert len(LogView.from_records(turns)) == 5
    with pytest.raises(duckdb.CatalogException):
        LogView.from_records(turns).sql("select * from gold")


def test_preferences_crud(store: Store) -> None:
    p = Preference(user_id="u1", kind="team", value="Golden State Warriors", ts=T0)
    store.put_preference(p)
    store.put_preference(p.model_copy(update={"value": "Los Angeles Lakers"}))
    store.put_preference(Preference(user_id="u1", kind="place", key="wilkerson", value="Wilkerson, CA", ts=T0))
    store.put_preference(Preference(user_id="u2", kind="team", value="Celtics", ts=T0))
    prefs = store.preferences("u1")
    assert {(x.kind, x.value) for x in prefs} == {("team", "Los Angeles Lakers"), ("place", "Wilkerson, CA")}
    assert store.delete_preferences("u1", kind="place", key="nope") == 0
    assert store.delete_preferences("u1", kind="place") == 1
    assert store.delete_preferences("u1") == 1
    assert store.preferences("u1") == [] and len(store.preferences("u2")) == 1


def test_forget_deletes_turns_gold_feedback_preferences(store: Store) -> None:
    store.add(
        turns=[turn(1), turn(2, user="u2")],
        gold=[
            Gold(turn_id=t, true_text="x", failure_point="correct", goal_id="g", goal_success=True)
            for t in ("t1", "t2")
        ],
        feedback=[
            Feedback(feedback_id="f1", turn_id="t1", user_id="u1", ts=T0, kind="yes"),
            Feedback(feedback_id="f2", turn_id="t2", user_id="u2", ts=T0, kind="no"),
        ],
    )
    store.put_preference(Preference(user_id="u1", kind="cuisine", value="Thai", ts=T0))
    assert store.forget("u1") == {"gold": 1, "feedback": 1, "turns": 1, "preferences": 1, "quarantine": 0}
    assert store.counts() == {"turns": 1, "gold": 1, "feedback": 1, "preferences": 0}
    assert store.logs().turns(user_id="u1").height == 0
    assert list(store.gold()["turn_id"]) == ["t2"]
    assert store.forget("u1") == {"gold": 0, "feedback": 0, "turns": 0, "preferences": 0, "quarantine": 0}


def test_deleted_text_stays_in_the_file_until_compact(store: Store) -> None:
    """Why ``forget`` rewrites the files: DuckDB keeps deleted strings in freed blocks, CHECKPOINT and VACUUM too."""
    secret = "zebra quokka lantern"
    store.add(turns=[turn(i, user="u1", asr_text=f"{secret} {i}") for i in range(50)] + [turn(99, user="u2")])
    store._con.execute("CHECKPOINT")
    assert secret.encode() in store.path.read_bytes()
    for statement in ("DELETE FROM turns WHERE user_id = 'u1'", "CHECKPOINT", "VACUUM", "CHECKPOINT"):
        store._con.execute(statement)
    assert secret.encode() in store.path.read_bytes()  # still readable: deleting is not enough
    store.compact()
    assert secret.encode() not in store.path.read_bytes()
    assert store.user_rows("u2")["turns"] == 1 and store.user_rows("u1")["turns"] == 0
    store.add(turns=[turn(99, user="u2")])  # keys survive the rewrite: a stored id is still a duplicate
    assert store.counts()["turns"] == 1


def test_forget_scrubs_quarantined_lines_of_the_user(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "turns.jsonl"
    src.write_bytes(b"\n".join([_line(turn(1), asr_confidence=7), _line(turn(2, user="u2"), asr_confidence=7)]))
    store.ingest([src])
    other = tmp_path / "other_q.jsonl"
    store.ingest([src], quarantine=other)
    assert store.forget("u1", quarantine=other)["quarantine"] == 2
    for path in (other, store.path.with_name("logs.quarantine.jsonl")):
        [entry] = _quarantine(path)
        assert '"u2"' in entry["raw"]


def test_store_held_by_another_process_gives_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "held.duckdb"
    code = "import sys, time; from selflearn.store.logstore import Store\n"
    code += "s = Store(sys.argv[1]); print('open', flush=True)\n"
    code += "time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code, str(db)], stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "open"
        with pytest.raises(StoreError, match="cannot open log store"):
            Store(db)
    finally:
        child.kill()
        child.wait(timeout=30)


_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from selflearn.store.logstore import Store
    store = Store(Path(sys.argv[1]))
    def tick(_: int) -> None:
        print("batch", flush=True)
    store.ingest([Path(sys.argv[2])], quarantine=Path(sys.argv[3]), on_progress=tick, batch_rows=100)
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_killed_ingest_leaves_valid_db_and_rerun_completes(tmp_path: Path, fmt: str) -> None:
    log = logsample.generate(3_000, seed=5)
    src = tmp_path / f"turns.{fmt}"
    if fmt == "jsonl":
        lines, counts = logsample.corrupt_jsonl([t.model_dump_json().encode() for t in log.turns], rate=0.02, seed=5)
        src.write_bytes(b"\n".join(lines) + b"\n")
    else:
        table, counts = logsample.corrupt_turn_table(to_arrow(log.turns, Turn), rate=0.02, seed=5)
        pq.write_table(table, src)
    db, q = tmp_path / "logs.duckdb", tmp_path / "q.jsonl"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db), str(src), str(q)], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "batch"  # at least one batch committed, more under way
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    injected = sum(v for k, v in counts.items() if k != "duplicate")
    with Store(db) as store:
        partial = store.counts()["turns"]
        assert 0 < partial < 3_000 - injected
        report = store.ingest([src], quarantine=q)
        assert report.read == report.ingested + report.duplicates + report.quarantined
        assert store.counts()["turns"] == 3_000 - injected
        assert report.ingested == 3_000 - injected - partial
        ids = store.logs().sql("select count(distinct turn_id) n, count(*) m from turns")
        assert ids["n"][0] == ids["m"][0] == 3_000 - injected


def test_invalid_utf8_in_parquet_is_quarantined(store: Store, tmp_path: Path) -> None:
    table = to_arrow([turn(i) for i in range(3)], Turn)
    texts = pa.array([b"fine", b"turn \xff on", b"also fine"], pa.binary()).view(pa.string())
    table = table.set_column(table.schema.get_field_index("asr_text"), "asr_text", texts)
    pq.write_table(table, tmp_path / "turns.parquet")
    q = tmp_path / "q.jsonl"
    report = store.ingest([tmp_path / "turns.parquet"], quarantine=q)
    assert (report.read, report.ingested, report.quarantined) == (3, 2, 1)
    [entry] = _quarantine(q)
    assert entry["line"] == 2 and "UTF8" in entry["reason"] and "\\xff" in entry["raw"]
    assert set(store.logs().turns()["asr_text"]) == {"fine", "also fine"}


def test_unreadable_parquet_files_are_quarantined_not_fatal(store: Store, tmp_path: Path) -> None:
    good = to_arrow([turn(i) for i in range(400)], Turn)
    pq.write_table(good, tmp_path / "turns_good.parquet")
    (tmp_path / "turns_garbage.parquet").write_bytes(b"PAR1 this is not parquet")
    pq.write_table(good, tmp_path / "turns_mid.parquet", row_group_size=100, compression="zstd")
    data = bytearray((tmp_path / "turns_mid.parquet").read_bytes())
    meta = pq.ParquetFile(tmp_path / "turns_mid.parquet").metadata
    start = meta.row_group(2).column(9).data_page_offset  # asr_text of the third row group
    data[start + 10 : start + 60] = b"\x00" * 50
    (tmp_path / "turns_mid.parquet").write_bytes(bytes(data))
    q = tmp_path / "q.jsonl"
    report = store.ingest([tmp_path], quarantine=q, batch_rows=100)
    assert report.read == report.ingested + report.duplicates + report.quarantined
    assert report.read == len(_quarantine(q)) + store.counts()["turns"] + report.duplicates
    assert store.counts()["turns"] == 400
    reasons = [e["reason"].split(":")[0] for e in _quarantine(q)]
    assert reasons.count("unreadable Parquet file") == 1
    assert reasons.count("undecodable Parquet data") == 100  # the damaged row group only; the fourth is read
    lost = [e for e in _quarantine(q) if e["reason"].startswith("undecodable")]
    assert [e["line"] for e in lost] == list(range(201, 301))
    assert all("unreadable columns: asr_text" in e["reason"] for e in lost)
    assert [json.loads(e["raw"])["turn_id"] for e in lost] == [f"t{i}" for i in range(200, 300)]  # what can be read


def test_bom_crlf_and_blank_lines_are_fine(store: Store, tmp_path: Path) -> None:
    src = tmp_path / "turns.jsonl"
    body = b"\r\n".join(t.model_dump_json().encode() for t in (turn(1), turn(2)))
    src.write_bytes(b"\xef\xbb\xbf" + body + b"\r\n\r\n   \n")
    report = store.ingest([src], quarantine=tmp_path / "q.jsonl")
    assert (report.read, report.ingested, report.quarantined) == (2, 2, 0)


def test_store_and_logview_are_safe_across_threads(store: Store) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(k: int) -> int:
        store.add(turns=[turn(100 * k + i) for i in range(20)])
        store.put_preference(Preference(user_id=f"u{k}", kind="team", value="x", ts=T0))
        return store.logs().turns().height

    with ThreadPoolExecutor(4) as pool:
        assert all(n >= 20 for n in pool.map(work, range(8)))
    assert store.counts()["turns"] == 160
    view = store.logs()
    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(lambda _: view.sql("select count(*) n from turns")["n"][0], range(16))) == {160}


def test_undeclared_mixed_file_stores_the_same_as_declared_files(tmp_path: Path) -> None:
    log = logsample.generate(300, seed=6)
    mixed = [r.model_dump_json() for pair in zip(log.turns, log.gold, strict=True) for r in pair]
    mixed += [f.model_dump_json() for f in log.feedback]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "export.jsonl").write_text("\n".join(mixed) + "\n")
    logsample.write_log(log, tmp_path / "b", fmt="jsonl")
    with Store(tmp_path / "a.duckdb") as a, Store(tmp_path / "b.duckdb") as b:
        ra = a.ingest([tmp_path / "a"])
        rb = b.ingest([tmp_path / "b"])
        assert ra.by_kind == rb.by_kind and ra.quarantined == rb.quarantined == 0
        assert a.logs().turns().equals(b.logs().turns())
        assert a.gold().equals(b.gold())
        assert a.logs().feedback().equals(b.logs().feedback())


def test_store_from_an_older_schema_gains_new_optional_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.duckdb"
    with Store(db) as s:
        s.add(turns=[turn(1)])
    con = duckdb.connect(str(db))  # an older file: no trace, no explicit_feedback, other column order
    con.execute("ALTER TABLE turns DROP COLUMN trace")
    con.execute("ALTER TABLE turns DROP COLUMN explicit_feedback")
    con.close()
    with Store(db) as s:
        s.add(turns=[turn(2, explicit_feedback="no")])
        frame = s.logs().turns()
        assert frame.columns == ARROW_SCHEMAS[Turn].names
        assert list(frame["trace"]) == ["{}", '{"nlu":{"top":[["HassTurnOn",0.9]]}}']
        assert list(frame["explicit_feedback"]) == [None, "no"]
        assert s.turn("t1") is not None


def test_parquet_missing_optional_columns_takes_the_vectorised_path_with_defaults(store: Store, tmp_path: Path) -> None:
    full = to_arrow([turn(i) for i in range(5)], Turn)
    old = full.drop_columns(["trace", "area", "barge_in"])
    pq.write_table(old, tmp_path / "turns_old.parquet")
    report = store.ingest([tmp_path / "turns_old.parquet"], quarantine=tmp_path / "q.jsonl")
    assert (report.ingested, report.quarantined) == (5, 0)
    frame = store.logs().turns()
    assert set(frame["trace"]) == {"{}"} and set(frame["barge_in"]) == {False} and frame["area"].null_count() == 5
    no_user = full.drop_columns(["user_id"])
    pq.write_table(no_user, tmp_path / "turns_nouser.parquet")
    assert store.ingest([tmp_path / "turns_nouser.parquet"], quarantine=tmp_path / "q.jsonl").quarantined == 5


_BASE_ROWS: dict[type, dict[str, object]] = {
    model: to_arrow([record], model).to_pylist()[0]
    for model, record in (
        (Gold, Gold(turn_id="t", true_text="x", failure_point="nlu", goal_id="g", goal_success=True)),
        (Feedback, Feedback(feedback_id="f", turn_id="t", user_id="u", ts=T0, kind="no")),
        (Preference, Preference(user_id="u", kind="team", value="v", ts=T0)),
    )
}


def _value_for(t: pa.DataType) -> st.SearchStrategy[object]:
    if pa.types.is_string(t):
        return st.none() | st.text(max_size=5) | st.sampled_from(["", "x" * 201, "x" * 1001, "team", "{}", "[]", "{"])
    if pa.types.is_floating(t):
        return st.none() | st.floats(allow_nan=True, allow_infinity=True)
    if pa.types.is_integer(t):
        return st.none() | st.integers(-3, 3)
    if pa.types.is_boolean(t):
        return st.none() | st.booleans()
    return st.none() | st.datetimes(
        min_value=datetime(1990, 1, 1), max_value=datetime(3000, 1, 1), timezones=st.just(UTC)
    )


@pytest.mark.parametrize("model", [Gold, Feedback, Preference], ids=lambda m: m.__name__)
def test_vectorised_predicate_is_sound_for_every_kind(model: type) -> None:
    schema = ARROW_SCHEMAS[model]
    base = _BASE_ROWS[model]
    loose = pa.schema([pa.field(f.name, f.type, True) for f in schema])

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(
            st.sampled_from(schema.names).flatmap(lambda n: st.tuples(st.just(n), _value_for(schema.field(n).type))),
            max_size=3,
        )
    )
    def check(edits: list[tuple[str, object]]) -> None:
        row = {**base, **dict(edits)}
        table = pa.Table.from_pylist([row], schema=loose)
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone='UTC'")
        con.register("batch", table)
        [(ok,)] = con.execute(f"SELECT ({predicate(model)}) IS TRUE FROM batch").fetchall()
        if ok:
            model.model_validate(table.to_pylist()[0])

    check()


# The turns table exactly as the schema-1 code created it (before the fields Home Assistant cannot supply became
# optional): a store written then must open, read and take schema-2 turns.
_V1_TURNS_DDL = (
    'CREATE TABLE turns ("turn_id" VARCHAR NOT NULL, "dialogue_id" VARCHAR NOT NULL, "session_id" VARCHAR NOT NULL, '
    '"user_id" VARCHAR NOT NULL, "home_id" VARCHAR NOT NULL, "device_id" VARCHAR NOT NULL, '
    '"device_type" VARCHAR NOT NULL, "ts" TIMESTAMPTZ NOT NULL, "area" VARCHAR, "asr_text" VARCHAR NOT NULL, '
    '"asr_confidence" DOUBLE NOT NULL, "rewritten_text" VARCHAR, "rewrite_source" VARCHAR NOT NULL, '
    '"nlu_intent" VARCHAR, "nlu_slots" VARCHAR NOT NULL, "nlu_confidence" DOUBLE NOT NULL, '
    '"resolved_entities" VARCHAR NOT NULL, "result_status" VARCHAR NOT NULL, "response_text" VARCHAR NOT NULL, '
    '"barge_in" BOOLEAN NOT NULL, "response_latency_ms" DOUBLE NOT NULL, "device_state_snapshot" VARCHAR NOT NULL, '
    '"explicit_feedback" VARCHAR, "trace" VARCHAR NOT NULL, "schema_version" INTEGER NOT NULL, PRIMARY KEY ("turn_id"))'
)


def test_a_schema_1_store_is_migrated_on_open_and_takes_turns_without_the_optional_fields(tmp_path: Path) -> None:
    db = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(db))
    con.execute(_V1_TURNS_DDL)
    con.execute(
        "INSERT INTO turns VALUES ('old', 'd', 's', 'u1', 'h', 'ep', 'speaker', TIMESTAMPTZ '2026-03-02 08:00:00+00', "
        "'kitchen', 'turn on the light', 0.93, NULL, 'none', 'HassTurnOn', '{}', 0.9, '{}', 'success', 'ok', false, "
        "120.5, '{}', NULL, '{}', 1)"
    )
    with pytest.raises(duckdb.ConstraintException):  # the v1 layout really refuses a turn without them
        con.execute(
            "INSERT INTO turns (turn_id, dialogue_id, session_id, user_id, home_id, device_id, device_type, ts, "
            "asr_text, asr_confidence, rewrite_source, nlu_slots, nlu_confidence, resolved_entities, result_status, "
            "response_text, barge_in, response_latency_ms, device_state_snapshot, trace, schema_version) VALUES "
            "('x', 'd', 's', 'u', 'h', 'e', NULL, now(), 'hi', NULL, 'none', '{}', 0, '{}', 'success', '', false, "
            "NULL, '{}', '{}', 2)"
        )
    con.close()
    new = turn(1, device_type=None, asr_confidence=None, response_latency_ms=None)
    assert new.schema_version == 2
    with Store(db) as store:
        old = store.turn("old")
        assert old is not None
        assert (old.schema_version, old.asr_confidence, old.response_latency_ms, old.device_type) == (
            1, 0.93, 120.5, "speaker"
        )  # fmt: skip
        store.add(turns=[new])
        assert store.turn(new.turn_id) == new
    with Store(db) as store:  # reopening a migrated store is a no-op
        frame = store.logs().turns()
        assert frame["turn_id"].to_list() == ["old", new.turn_id]
        assert frame["asr_confidence"].to_list() == [0.93, None]
        assert frame["device_type"].to_list() == ["speaker", None]


def test_shared_finds_other_users_phrases_in_any_text_column(store: Store) -> None:
    store.add(
        turns=[turn(1, user="u1", asr_text="what's the time in oslo"), turn(2, user="u2", asr_text="what's the time")],
        gold=[
            Gold(turn_id="t2", true_text="play jazz (live) please", failure_point="asr", goal_id="g", goal_success=True)
        ],
    )
    store.put_preference(Preference(user_id="u2", kind="phrase", key="movie night", value="lights off", ts=T0))
    said = {"what's the time", "play jazz (live)", "movie night", "lights off", "nobody said this"}
    assert store.shared(said, besides="u1") == said - {"nobody said this"}
    assert store.shared({"what's the time in oslo"}, besides="u1") == set()
    assert store.shared({"what's the time in oslo"}) == {"what's the time in oslo"}


def test_parquet_json_cells_are_bounded_and_stored_canonically(store: Store, tmp_path: Path) -> None:
    rows = to_arrow([turn(i) for i in range(6)], Turn).to_pylist()
    rows[1]["trace"] = '{"a":' + "[" * 5_000 + "]" * 5_000 + "}"  # json_valid in DuckDB; RecursionError in Python
    rows[2]["nlu_slots"] = '{"a":1,"a":2}'
    rows[3]["device_state_snapshot"] = '{"a":NaN}'
    rows[4]["resolved_entities"] = '{"a" :  1e5}'  # valid, unusual spelling
    src = tmp_path / "turns.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=ARROW_SCHEMAS[Turn]), src)
    q = tmp_path / "q.jsonl"
    report = store.ingest([src], quarantine=q)
    assert (report.read, report.ingested, report.quarantined) == (6, 3, 3)
    reasons = {e["line"]: e["reason"] for e in _quarantine(q)}
    assert "trace: JSON nested 5001 levels deep" in reasons[2]
    assert "nlu_slots: duplicate key 'a'" in reasons[3]
    assert "NaN" in reasons[4]
    assert store.turn("t4").resolved_entities == {"a": 100000.0}  # type: ignore[union-attr]
    assert store.logs().sql("select resolved_entities from turns where turn_id = 't4'").item() == '{"a":100000.0}'
    assert all(store.turn(f"t{i}") is not None for i in (0, 4, 5))


def test_parquet_truncated_json_cell_with_two_keys_is_quarantined_not_fatal(store: Store, tmp_path: Path) -> None:
    rows = to_arrow([turn(i) for i in range(3)], Turn).to_pylist()
    rows[1]["trace"] = '{"a":1,"b":'  # DuckDB's json_keys raises on it: the key check must not reach it
    src = tmp_path / "turns.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=ARROW_SCHEMAS[Turn]), src)
    report = store.ingest([src], quarantine=tmp_path / "q.jsonl")
    assert (report.read, report.ingested, report.quarantined) == (3, 2, 1)
    assert "trace: bad JSON" in _quarantine(tmp_path / "q.jsonl")[0]["reason"]
