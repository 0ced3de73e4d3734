from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from selflearn.learners.signals import DefectSignals, SignalConfig
from selflearn.schema import Feedback, Turn
from selflearn.sim.synthlogs import generate
from selflearn.store.logview import LogView

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def turn(i: int, user: str, at: float, text: str, status: str = "success", **kw: Any) -> Turn:
    return Turn(
        turn_id=f"{user}-{i}",
        dialogue_id=f"{user}-d",
        session_id=f"{user}-s",
        user_id=user,
        home_id="h1",
        device_id="kitchen_speaker",
        device_type="speaker",
        ts=T0 + timedelta(seconds=at),
        asr_text=text,
        asr_confidence=0.9,
        result_status=status,
        nlu_intent=kw.pop("intent", "HassTurnOn" if status == "success" else None),
        response_latency_ms=300.0,
        **kw,
    )


def scored(turns: list[Turn], feedback: list[Feedback] = (), **config: Any) -> dict[str, dict[str, Any]]:
    frame = DefectSignals(SignalConfig(**config)).score(LogView.from_records(turns, feedback))
    return {row["turn_id"]: row for row in frame.iter_rows(named=True)}


def test_failure_then_quick_rephrase_is_a_defect_and_the_rephrase_is_clean() -> None:
    rows = scored(
        [
            turn(0, "ann", 0, "turn on the kitchen lite", "no_entity"),
            turn(1, "ann", 6, "turn on the kitchen light"),
            turn(2, "ann", 900, "what's the weather", intent="HassGetWeather"),
        ]
    )
    first, second, third = rows["ann-0"], rows["ann-1"], rows["ann-2"]
    assert first["rephrased"] and first["no_result"] and first["defect"]
    assert not first["abandoned"]
    assert not second["defect"] and not second["rephrased"]  # 900 s later is a new request
    assert not third["defect"]
    assert first["defect_score"] > second["defect_score"]


def test_barge_in_repeat_abandonment_and_explicit_feedback() -> None:
    rows = scored(
        [
            turn(0, "bob", 0, "play jazz", barge_in=True, intent="HassMediaPlay"),
            turn(1, "bob", 4, "play jazz", intent="HassMediaPlay"),
            turn(2, "bob", 600, "set the heating to twenty", "no_match"),
            turn(3, "bob", 3600, "turn off the fan", explicit_feedback="no"),
            turn(4, "bob", 7200, "turn on the fan"),
        ],
        [Feedback(feedback_id="f1", turn_id="bob-4", user_id="bob", ts=T0 + timedelta(seconds=7210), kind="no")],
    )
    assert rows["bob-0"]["barge_in"] and rows["bob-0"]["repeated"] and rows["bob-0"]["defect"]
    assert rows["bob-2"]["abandoned"] and rows["bob-2"]["no_result"] and rows["bob-2"]["defect"]
    assert rows["bob-3"]["explicit_negative"] and rows["bob-3"]["defect"]
    assert rows["bob-4"]["explicit_negative"]  # from the Feedback table


def test_barge_in_flag_on_the_interrupting_turn() -> None:
    turns = [turn(0, "cy", 0, "lights on"), turn(1, "cy", 3, "turn on the lights", barge_in=True)]
    rows = scored(turns, barge_in_flag="interrupting")
    assert rows["cy-0"]["barge_in"] and not rows["cy-1"]["barge_in"]


def test_form_aggregation_lifts_a_weak_single_user_signal() -> None:
    """Many users rephrase "lights of": one user's single instance with no own signal still scores higher."""
    turns = []
    for u in range(8):
        turns += [turn(0, f"u{u}", 100 * u, "lights of", "no_match"), turn(1, f"u{u}", 100 * u + 5, "lights off")]
    turns.append(turn(9, "quiet", 5000, "lights of", "success", intent="HassTurnOff"))
    turns.append(turn(10, "quiet", 5100, "good morning", "success", intent="HassGetTime"))
    rows = scored(turns)
    lone, other = rows["quiet-9"], rows["quiet-10"]
    assert lone["turn_score"] == 0.0 and lone["form_rate"] > 0.5
    assert lone["defect_score"] > other["defect_score"]
    assert lone["form_users"] == 8


def test_threshold_trades_precision_for_recall() -> None:
    turns, truth = generate(3000, seed=3)
    counts = []
    for threshold in (0.3, 0.5, 0.9):
        frame = DefectSignals(SignalConfig(threshold=threshold)).score_frame(turns).join(truth, on="turn_id")
        counts.append(int(frame["defect"].sum()))
        if threshold == 0.5:
            tp = int((frame["defect"] & frame["defect_right"]).sum())
            assert tp / frame["defect"].sum() > 0.9
            assert tp / frame["defect_right"].sum() > 0.9
    assert counts[0] >= counts[1] >= counts[2]
    assert counts[0] > counts[2]


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_logs(n: int) -> None:
    turns = [turn(0, "solo", 0, "hello", "no_match")][:n]
    frame = DefectSignals().score(LogView.from_records(turns))
    assert frame.height == n
    assert set(frame.columns) >= {"turn_id", "barge_in", "rephrased", "repeated", "abandoned", "explicit_negative",
                                  "no_result", "defect_score", "defect"}  # fmt: skip
    assert isinstance(frame, pl.DataFrame)


def test_signals_and_mining_need_no_device_type_asr_confidence_or_latency() -> None:
    """Real use through Home Assistant logs none of the three: every signal and every mined rule stays the same."""
    from selflearn.learners.mining import RewriteMiner
    from selflearn.schema import ARROW_SCHEMAS

    turns, _ = generate(6_000, seed=5)
    bare = turns.with_columns(
        device_type=pl.lit(None, pl.String),
        asr_confidence=pl.lit(None, pl.Float64),
        response_latency_ms=pl.lit(None, pl.Float64),
    )
    empty = ARROW_SCHEMAS[Feedback].empty_table()
    views = [LogView(t.to_arrow().cast(ARROW_SCHEMAS[Turn]), empty) for t in (turns, bare)]
    full, without = (DefectSignals().score(v).sort("turn_id") for v in views)
    cols = ["turn_id", "defect_score", "defect", "rephrased", "repeated", "abandoned", "no_result", "barge_in"]
    assert full["defect"].sum() > 100
    assert full.select(cols).equals(without.select(cols))
    rules = [RewriteMiner().fit(v).global_table.sort("source") for v in views]
    assert rules[0].height > 10 and rules[0].equals(rules[1])
