"""`selflearn bench wyoming` on a few requests: both servers answer the known utterance, every request is timed."""

from __future__ import annotations

from selflearn.bench.wyoming import GOAL_P99_MS, run_bench


def test_bench_times_wyoming_and_http_in_one_run_without_errors() -> None:
    result = run_bench(requests=12, warmup=2)
    for kind in ("wyoming", "http_interpret", "http_conversation"):
        assert result[kind]["n"] == 12 and result[kind]["errors"] == 0
        assert 0 < result[kind]["p50_ms"] <= result[kind]["p99_ms"]
    assert result["goal_p99_ms"] == GOAL_P99_MS
    assert result["goal_met"] == (result["wyoming"]["p99_ms"] < GOAL_P99_MS)
