"""The daily loop on a tiny world: day 1 runs on nothing learned, each night publishes, stats and report follow."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from selflearn.artifacts import ArtifactStore
from selflearn.cli.main import app
from selflearn.schema import Turn
from selflearn.sim.loop import LoopResult, eval_world, run_loop
from selflearn.store.logstore import Store


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoopResult, ArtifactStore]:
    homes, focus = eval_world(2, 3, None)
    assert focus is None
    artifacts = ArtifactStore(tmp_path_factory.mktemp("loop") / "artifacts")
    stages: list[str] = []
    return run_loop(homes, days=2, seed=3, artifacts=artifacts, on_stage=stages.append), artifacts


def test_day_one_runs_on_nothing_learned_then_nights_publish(tiny: tuple[LoopResult, ArtifactStore]) -> None:
    result, artifacts = tiny
    first, second = result.days
    assert first.artifact_version is None and first.rewrite_rate == first.retrieval_rate  # no rules yet
    assert artifacts.current() is not None and second.artifact_version == artifacts.current()
    assert first.turns > 0 and len(result.turns) == len(result.gold) == first.turns + second.turns


def test_metrics_cover_every_day(tiny: tuple[LoopResult, ArtifactStore]) -> None:
    result, _ = tiny
    metrics = result.metrics()
    assert metrics["defect_rate_day1"] == result.days[0].defect_rate
    assert metrics["defect_rate_last"] == metrics["defect_rate_day2"] == result.days[1].defect_rate
    assert 0.0 < metrics["defect_rate_day1"] < 1.0
    assert result.rewrite_cpu_ms  # day 2 ran on the first night's artifacts
    assert 0.0 <= metrics["rewrite_cpu_ms_mean"] <= metrics["rewrite_cpu_ms_p99"]


def test_retrieval_runs_in_the_loop_deterministically_and_can_be_left_out(
    tiny: tuple[LoopResult, ArtifactStore], tmp_path: Path
) -> None:
    result, _ = tiny
    retrieved = [t for t in result.turns if t.rewrite_source == "retrieval"]
    assert retrieved and sum(d.retrieval_rate for d in result.days) > 0
    homes, _ = eval_world(2, 3, None)
    again = run_loop(homes, days=1, seed=3, artifacts=ArtifactStore(tmp_path / "again"))
    day1 = result.turns[: result.day_ends[0]]

    def seen(turns: list[Turn]) -> list[tuple[str, str, str | None, str]]:
        return [(t.turn_id, t.asr_text, t.rewritten_text, t.result_status) for t in turns]

    assert seen(again.turns) == seen(day1)  # the same seed, the same day (the index read from the cache)
    off = run_loop(homes, days=1, seed=3, artifacts=ArtifactStore(tmp_path / "off"), retrieval=False)
    assert off.days[0].retrieval_rate == 0.0 and all(t.rewrite_source != "retrieval" for t in off.turns)


def test_eval_world_adds_an_unseen_home_and_focuses_on_it() -> None:
    from selflearn.home import SHIPPED_HOMES_DIR

    homes, focus = eval_world(2, 0, SHIPPED_HOMES_DIR / "maple_house.yaml")
    assert focus == "maple_house" and [h.id for h in homes][-1] == "maple_house" and len(homes) == 3


def test_demo_command_writes_report_and_logs(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    db = tmp_path / "logs.duckdb"
    args = ["demo", "--homes", "1", "--days", "2", "--seed", "1", "--out", str(out), "--db", str(db)]
    result = CliRunner().invoke(app, [*args, "--artifacts", str(tmp_path / "artifacts")])
    assert result.exit_code == 0, result.output
    assert out.exists() and "% of turns per day" in result.stdout and str(out) in result.stdout
    with Store(db) as store:
        assert len(store.logs()) > 0 and store.gold().height == len(store.logs())


@pytest.mark.slow
def test_loop_and_rewrite_suites_report_their_metrics() -> None:
    from selflearn.eval import harness as evaluate

    loop = evaluate.run("loop", evaluate.EvalConfig(seed=1, quick=True))
    assert {"defect_rate_day1", "defect_rate_last", "relative_drop", "reduction_vs_control_mean"} <= set(loop.metrics)
    assert loop.metrics["defect_rate_day1"] == loop.baseline["control_defect_rate_day1"]
    rewrite = evaluate.run("rewrite", evaluate.EvalConfig(seed=1, quick=True))
    keys = {"defect_rate_none", "defect_rate_global", "defect_rate_personal", "reduction_global", "win_loss"}
    assert keys | {"rephrase_f1_model", "rephrase_f1_baseline", "rewrite_rate"} <= set(rewrite.metrics)
    assert rewrite.metrics["defect_rate_personal"] <= rewrite.metrics["defect_rate_none"]


def test_shadow_scores_judge_the_replays_with_gold() -> None:
    """Night 1: one fix gold confirms, two breaks the shadow misses: it accepts while gold's rate rises (wrong).
    Night 2: a fix gold refutes (the rewrite succeeded at the wrong thing) and two caught breaks: rejected (right).
    The log-only estimate (half a fix on each defect, no breaks) accepts both nights."""
    import polars as pl

    from selflearn.eval.suites.loop import shadow_scores
    from selflearn.learners.shadow import SHADOW_COLUMNS
    from selflearn.schema import Gold

    lamp = '{"name": "light.desk"}'

    def row(turn: str, before: str, after: str, fix: float, brk: float) -> dict[str, object]:
        return {
            "turn_id": turn, "defect": fix > 0, "replayed": True, "log_only": False,
            "before_status": before, "before_intent": "HassTurnOn" if before == "success" else None,
            "before_slots": lamp, "after_status": after, "after_intent": "HassTurnOn" if after == "success" else None,
            "after_slots": lamp, "would_fix": fix, "would_break": brk, "log_only_fix": fix / 2, "log_only_break": 0.0,
        }  # fmt: skip

    def gold(turn: str, intent: str = "HassTurnOn") -> Gold:
        return Gold(turn_id=turn, true_text="x", true_intent=intent, true_slots={"name": "light.desk"},
                    failure_point="nlu", goal_id=turn, goal_success=False)  # fmt: skip

    night1 = [row("a", "no_match", "success", 1, 0), row("b", "success", "no_match", 0, 0)]
    night1 += [row("c", "success", "no_match", 0, 0)]
    night2 = [row("d", "no_match", "success", 1, 0), row("e", "success", "no_match", 0, 1)]
    night2 += [row("g", "success", "failed", 0, 1), row("h", "success", "success", 0, 0)]
    golds = {g.turn_id: g for g in [gold("a"), gold("b"), gold("c"), gold("d", "HassTurnOff"), gold("e"), gold("g")]}
    frames = [(1, pl.DataFrame(night1, schema=SHADOW_COLUMNS)), (2, pl.DataFrame(night2, schema=SHADOW_COLUMNS))]
    scores = shadow_scores(frames, golds, margin=0)
    shadow, log_only = scores["shadow"], scores["log_only"]
    assert shadow["nights"] == 2 and shadow["accepted_nights"] == 1 and shadow["decision_accuracy"] == 0.5
    assert shadow["fix_precision"] == 0.5 and shadow["gold_fixes"] == 1 and shadow["gold_breaks"] == 4
    assert shadow["break_recall"] == 0.5 and shadow["break_precision"] == 1.0
    assert shadow["delta_mae"] == pytest.approx((2 / 3 + 1 / 4) / 2)
    assert log_only["accepted_nights"] == 2 and log_only["decision_accuracy"] == 0.0
    assert log_only["fix_precision"] == 0.5 and log_only["break_recall"] == 0.0


def test_shuffled_batch_moves_every_target_to_the_next_rule() -> None:
    import polars as pl

    from selflearn.eval.suites.loop import shuffled
    from selflearn.learners.mining import RewriteTables
    from selflearn.runtime.rewrites import REWRITE_SCHEMA

    rows = [{"source": s, "target": t, "target_intent": i} for s, t, i in [("a", "A", "X"), ("b", "B", "Y")]]
    table = pl.DataFrame(rows).with_columns(
        pl.lit(None, dtype=d).alias(c) for c, d in REWRITE_SCHEMA.items() if c not in rows[0]
    )
    twin = shuffled(RewriteTables(global_table=table))
    assert twin.global_table.select("source", "target", "target_intent").rows() == [("a", "B", "Y"), ("b", "A", "X")]
    assert twin.personal_table.height == 0
