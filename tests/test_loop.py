"""The daily loop on a tiny world: day 1 runs on nothing learned, each night publishes, stats and report follow."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from selflearn.artifacts import ArtifactStore
from selflearn.cli import app
from selflearn.loop import LoopResult, eval_world, run_loop
from selflearn.store import Store


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
    assert first.artifact_version is None and first.rewrite_rate == 0.0
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
    from selflearn import evaluate

    loop = evaluate.run("loop", evaluate.EvalConfig(seed=1, quick=True))
    assert {"defect_rate_day1", "defect_rate_last", "relative_drop", "reduction_vs_control_mean"} <= set(loop.metrics)
    assert loop.metrics["defect_rate_day1"] == loop.baseline["control_defect_rate_day1"]
    rewrite = evaluate.run("rewrite", evaluate.EvalConfig(seed=1, quick=True))
    keys = {"defect_rate_none", "defect_rate_global", "defect_rate_personal", "reduction_global", "win_loss"}
    assert keys | {"rephrase_f1_model", "rephrase_f1_baseline", "rewrite_rate"} <= set(rewrite.metrics)
    assert rewrite.metrics["defect_rate_personal"] <= rewrite.metrics["defect_rate_none"]
