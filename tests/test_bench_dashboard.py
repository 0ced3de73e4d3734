"""dashboard_bench.py: the page-load bench runs end to end on a small store and reports every page for both viewers,
and the first page after start (its first answer, and the time until the real page) separately."""

from __future__ import annotations

from selflearn.bench.dashboard import PAGES, run_bench


def test_bench_times_every_page_for_admin_and_home_against_healthz() -> None:
    result = run_bench(turns=3000, repeats=1)
    assert result["turns"] == result["admin_turns_seen"] > result["home_turns_seen"] > 0
    for who in ("admin", "home"):
        assert set(result[who]) == set(PAGES)
        assert all(t["p50_ms"] > 0 and t["max_ms"] >= t["p50_ms"] for t in result[who].values())
    assert result["healthz"]["p50_ms"] > 0 and result["first_real_page_s"] >= result["first_response_ms"] / 1000 > 0
    loads = [t[k] for who in ("admin", "home") for t in result[who].values() for k in ("cold_ms", "max_ms")]
    slowest = max([*loads, result["first_response_ms"], result["reading_max_ms"]])
    assert result["reading_pages"] >= 0 and (result["reading_max_ms"] > 0) == (result["reading_pages"] > 0)
    assert result["slowest_page_ms"] == slowest and result["every_page_under_1s"] == (slowest < 1000)
