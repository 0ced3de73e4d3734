"""The Spark engine mines the same rule tables as the embedded engine, on the same logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from pyspark.sql import SparkSession

from selflearn.engines.dataset import FEEDBACK, TURNS, read_table, write_dataset
from selflearn.engines.spark import SparkMiner, absorb, read_logs, session
from selflearn.home import Home
from selflearn.learners.mining import MiningConfig, RewriteMiner, RewriteTables
from selflearn.learners.mining import absorb as embedded_absorb
from selflearn.learners.signals import DefectSignals
from selflearn.schema import ARROW_SCHEMAS, Feedback, Turn
from selflearn.sim.synthlogs import SynthConfig, generate
from selflearn.store.logview import LogView


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    spark = session("local[2]", shuffle_partitions=4)
    yield spark
    spark.stop()


def assert_same_tables(embedded: RewriteTables, spark: RewriteTables) -> None:
    """Same rows, same support and distinct counts, probabilities equal to 1e-9."""
    for name in ("global_table", "personal_table", "pattern_table"):
        a = getattr(embedded, name).sort("user_id", "source", nulls_last=True)
        b = getattr(spark, name).sort("user_id", "source", nulls_last=True)
        assert a.schema == b.schema, name
        assert a.drop("probability").equals(b.drop("probability")), name
        if a.height:
            assert (a["probability"] - b["probability"]).abs().max() < 1e-9, name  # type: ignore[operator]


def test_absorption_by_squaring_equals_the_sparse_lu_solve(spark: SparkSession) -> None:
    """Loops between failing forms, a self-loop, a tie and a form only absorbed by giving up."""
    rows = [
        ("a", "fail", "b"), ("a", "ok", "X"), ("a", "gave_up", None),
        ("b", "fail", "a"), ("b", "fail", "b"), ("b", "ok", "Y"), ("b", "ok", "Y"),
        ("c", "ok", "Y"), ("c", "ok", "X"),
        ("d", "gave_up", None), ("d", "fail", "d"),
        ("e", "fail", "zzz"), ("e", "ok", "X"),
    ]  # fmt: skip
    frame = pl.DataFrame(rows, schema=["form", "to_kind", "to_form"], orient="row")
    expected = embedded_absorb(frame).sort("form")
    got = pl.from_arrow(absorb(spark.createDataFrame(frame.to_arrow())).toArrow())
    assert isinstance(got, pl.DataFrame)
    got = got.sort("form")
    assert got["form"].to_list() == expected["form"].to_list() == ["a", "b", "c", "e"]
    assert got["target"].to_list() == expected["target"].to_list()
    assert (got["probability"] - expected["probability"]).abs().max() < 1e-12  # type: ignore[operator]


def _homes(n: int) -> list[Home]:
    from selflearn.home import Area, Device, Endpoint

    rooms = ("porch", "attic", "study", "nursery", "den", "pantry")
    return [
        Home(
            id=f"home-{i}",
            areas=[Area(id="r", name=rooms[i % len(rooms)])],
            devices=[Device(id="light.r", name=f"{rooms[i % len(rooms)]} lamp", domain="light", area="r")],
            endpoints=[Endpoint(id="speaker", type="speaker", area="r")],
        )
        for i in range(n)
    ]


def _turn(user: int, at: float, text: str, status: str, intent: str | None, slots: dict[str, str]) -> Turn:
    t0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    return Turn(
        turn_id=f"u{user}-{at}", dialogue_id=f"u{user}", session_id=f"u{user}", user_id=f"u{user}",
        home_id=f"home-{user}", device_id="speaker", device_type="speaker", ts=t0 + timedelta(seconds=at),
        asr_text=text, asr_confidence=0.9, result_status=status, nlu_intent=intent, nlu_slots=slots,
        response_latency_ms=200.0,
    )  # fmt: skip


def test_pattern_table_meta_turns_and_feedback_mine_alike(spark: SparkSession) -> None:
    """Per home names delexicalised, a "no that's wrong" between failure and repair, a feedback row: same tables."""
    rooms = ("porch", "attic", "study", "nursery", "den", "pantry")
    turns: list[Turn] = []
    feedback: list[Feedback] = []
    for u in range(6):
        room = rooms[u]
        for k in range(3):
            at = 1000.0 * k
            turns.append(_turn(u, at, f"lights out in the {room}", "no_match", None, {}))
            turns.append(_turn(u, at + 3, "no that's wrong", "feedback", None, {}))
            slots = {"area": room, "domain": "light"}
            turns.append(_turn(u, at + 6, f"turn off the lights in the {room}", "success", "HassTurnOff", slots))
        turns.append(_turn(u, 5000.0, f"dim the {room} lamp", "success", "HassLightSet", {"area": room}))
        feedback.append(
            Feedback(feedback_id=f"f{u}", turn_id=f"u{u}-5000.0", user_id=f"u{u}", ts=turns[-1].ts, kind="no")
        )
    logs = LogView.from_records(turns, feedback)
    homes = _homes(6)
    embedded = RewriteMiner().fit(logs, homes=homes)
    assert embedded.pattern_table.height >= 1 and embedded.personal_table.height >= 6
    got = SparkMiner(spark, MiningConfig()).fit(
        spark.createDataFrame(logs.turns().to_arrow()), spark.createDataFrame(logs.feedback().to_arrow()), homes=homes
    )
    assert_same_tables(embedded, got)


@pytest.mark.slow
def test_cli_exports_the_store_and_learns_with_spark_as_the_embedded_engine_does(
    spark: SparkSession, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from selflearn.cli.main import app
    from selflearn.store.logstore import Store

    turns, _ = generate(6_000, seed=2, config=SynthConfig(n_users=40, days=2))
    db = tmp_path / "logs.duckdb"
    with Store(db) as store:
        store.add(turns=[Turn(**row) for row in turns.to_dicts()])
    runner = CliRunner()
    exported = runner.invoke(app, ["export", "--parquet", str(tmp_path / "ds"), "--db", str(db), "--json"])
    assert exported.exit_code == 0, exported.output
    reports = {}
    for engine in ("duckdb", "spark"):
        args = ["learn", "--engine", engine, "--parquet", str(tmp_path / "ds"), "--no-shadow", "--json"]
        result = runner.invoke(app, [*args, "--artifacts", str(tmp_path / engine)])
        assert result.exit_code == 0, result.output
        reports[engine] = json.loads(result.stdout)
    keys = ("turns", "defects", "global_rewrites", "personal_rewrites", "global_patterns", "published")
    assert [reports["spark"][k] for k in keys] == [reports["duckdb"][k] for k in keys]
    assert reports["spark"]["global_rewrites"] > 0
    from selflearn.artifacts import ArtifactStore

    roots = [ArtifactStore(tmp_path / e).current_dir() for e in ("duckdb", "spark")]
    assert all(roots)
    assert_same_tables(*(RewriteTables.load(r) for r in roots if r is not None))


def test_dataset_partitions_by_day_and_home_hash_and_appends(tmp_path: Path) -> None:
    turns, _ = generate(2_000, seed=1, config=SynthConfig(n_users=30, days=2))
    write_dataset(tmp_path, turns.head(1_000))
    write_dataset(tmp_path, turns.tail(turns.height - 1_000))
    parts = {p.relative_to(tmp_path / TURNS).parts[:2] for p in (tmp_path / TURNS).rglob("*.parquet")}
    assert {day for day, _ in parts} == {"day=2026-11-01", "day=2026-11-02", "day=2026-11-03"} & {d for d, _ in parts}
    assert all(len(bucket) == len("home_bucket=") + 2 for _, bucket in parts)
    assert not any(h in str(p) for p in (tmp_path / TURNS).rglob("*") for h in turns["home_id"].unique())
    back = read_table(tmp_path, TURNS).sort("turn_id")
    assert back.equals(turns.sort("turn_id").select(ARROW_SCHEMAS[Turn].names))
    assert read_table(tmp_path, FEEDBACK).height == 0


@pytest.mark.slow
def test_spark_rule_tables_equal_the_embedded_engines_on_200k_turns(spark: SparkSession, tmp_path: Path) -> None:
    """The issue's gate: a seeded 200k-turn log written once as the Parquet dataset; each engine reads it."""
    turns, _ = generate(200_000, seed=17, config=SynthConfig(n_users=400, days=7))
    write_dataset(tmp_path, turns)
    config = MiningConfig()
    from_parquet = read_table(tmp_path, TURNS)
    embedded = RewriteMiner(config).fit_frame(DefectSignals(config.signals).score_frame(from_parquet))
    assert embedded.global_table.height > 300 and embedded.personal_table.height > 1_000
    spark_turns, spark_feedback = read_logs(spark, str(tmp_path))
    assert spark_feedback is None
    assert_same_tables(embedded, SparkMiner(spark, config).fit(spark_turns))
