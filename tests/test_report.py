"""HTML report: self-contained (plotly inlined), one row per day, and daily stats joined to gold correctly."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from selflearn.eval.report import write_report
from selflearn.schema import Gold, Turn
from selflearn.sim.loop import DayStats, day_stats


def _turn(i: int, rewritten: bool = False) -> Turn:
    return Turn(
        turn_id=f"t{i}",
        dialogue_id=f"d{i}",
        session_id="s",
        user_id="u",
        home_id="h",
        device_id="ep",
        device_type="speaker",
        ts=datetime(2026, 1, 1, tzinfo=UTC),
        asr_text="x",
        asr_confidence=1.0,
        rewritten_text="y" if rewritten else None,
        rewrite_source="global" if rewritten else "none",
        result_status="success",
        response_latency_ms=1.0,
    )


def _gold(i: int, point: str, goal: str, success: bool) -> Gold:
    return Gold(turn_id=f"t{i}", true_text="x", failure_point=point, goal_id=goal, goal_success=success)  # type: ignore[arg-type]


def test_day_stats_join_gold_by_turn() -> None:
    turns = [_turn(0, rewritten=True), _turn(1), _turn(2), _turn(3)]
    gold = [
        _gold(0, "correct", "g0", True),
        _gold(1, "asr", "g1", False),
        _gold(2, "nlu", "g1", True),
        _gold(3, "correct", "g2", True),
    ]
    stats = day_stats(3, turns, gold, rules=(5, 2), version="v1")
    assert stats.turns == 4 and stats.defect_rate == 0.5
    assert stats.by_failure_point["asr"] == 0.25 and stats.by_failure_point["er"] == 0.0
    assert stats.goal_success == 1.0 and stats.rewrite_rate == 0.25
    assert (stats.rules_global, stats.rules_personal, stats.artifact_version) == (5, 2, "v1")


def test_report_is_one_self_contained_file(tmp_path: Path) -> None:
    days = [
        DayStats(
            d,
            100,
            0.3 - 0.05 * d,
            {"asr": 0.1, "nlu": 0.2 - 0.05 * d},
            0.8,
            0.01 * d,
            3 * d,
            d,
            f"v{d}" if d > 1 else None,
            1.0,
        )
        for d in (1, 2, 3)
    ]
    control = [replace(d, defect_rate=0.333) for d in days]
    path = write_report(days, tmp_path / "sub" / "report.html", control=control, notes=["8 homes x 3 days"])
    doc = path.read_text(encoding="utf-8")
    assert doc.startswith("<!doctype html>") and "8 homes x 3 days" in doc
    assert "<script src=" not in doc and "plotly" in doc.lower()
    assert doc.count("<tr>") == 1 + len(days)
    assert "20.0%" in doc and doc.count("33.3%") == len(days)  # day 2's defect rate; the control column
    assert "nothing learned" in doc
