from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from selflearn.artifacts import ArtifactStore
from selflearn.learn import LearnConfig, learn
from selflearn.rewrite import read_global, read_personal
from selflearn.schema import Turn
from selflearn.store import LogView

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def turn(user: str, at: float, text: str, status: str = "success", intent: str | None = "HassTurnOff") -> Turn:
    return Turn(
        turn_id=f"{user}-{at}",
        dialogue_id=f"{user}-{int(at)}",
        session_id=f"{user}-{int(at)}",
        user_id=user,
        home_id="h",
        device_id="speaker",
        device_type="speaker",
        ts=T0 + timedelta(seconds=at),
        asr_text=text,
        asr_confidence=0.9,
        result_status=status,
        nlu_intent=intent if status == "success" else None,
        response_latency_ms=200.0,
    )


def repairs(users: range, at: float) -> list[Turn]:
    out = []
    for u in users:
        out += [turn(f"u{u}", at + 60 * u, "lights of", "no_match"), turn(f"u{u}", at + 60 * u + 5, "lights off")]
    return out


def test_learn_publishes_global_and_personal_tables(tmp_path: object) -> None:
    store = ArtifactStore(tmp_path)  # type: ignore[arg-type]
    day = 86_400.0
    turns = repairs(range(6), 0) + repairs(range(3), 3600) + repairs(range(6), day)
    report = learn(LogView.from_records(turns), store)
    assert report.published and report.version == store.current()
    assert report.shadow is not None and report.shadow.accepted
    assert report.shadow.defect_rate_after < report.shadow.defect_rate_before
    root = store.current_dir()
    assert root is not None
    assert read_global(root).select("source", "target").rows() == [("lights of", "lights off")]
    assert read_personal(root, "u0")["support"].to_list() == [3]
    assert report.turns == len(turns) and report.global_rewrites == 1 and report.personal_users == 6
    assert report.to_dict()["shadow"]["held_out_day"] == "2026-11-03"


def test_shadow_check_rejects_a_batch_that_would_break_the_held_out_day(tmp_path: object) -> None:
    store = ArtifactStore(tmp_path)  # type: ignore[arg-type]
    first = learn(LogView.from_records(repairs(range(6), 0)), store)  # one day: no shadow check possible
    assert first.published and first.shadow is None
    day = 86_400.0
    works_now = [turn(f"v{u}", day + 30 * u, "lights of", intent="HassTurnOn") for u in range(40)]
    report = learn(LogView.from_records(repairs(range(6), 0) + works_now), store)
    assert report.shadow is not None and not report.shadow.accepted
    assert report.shadow.would_break > report.shadow.would_fix
    assert not report.published and store.current() == first.version == report.version


def test_learn_without_shadow_and_on_empty_logs(tmp_path: object) -> None:
    store = ArtifactStore(tmp_path)  # type: ignore[arg-type]
    report = learn(LogView.from_records([]), store, config=LearnConfig(shadow=False))
    assert report.published and report.global_rewrites == 0 and report.defect_rate == 0.0
    root = store.current_dir()
    assert root is not None and read_global(root).height == 0
    assert isinstance(read_global(root), pl.DataFrame)
