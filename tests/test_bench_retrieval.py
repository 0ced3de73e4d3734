"""The retrieval lookup bench: real day-0 entries scaled to a larger (approximate) index, timed as the runtime asks."""

from __future__ import annotations

import logging

import pytest

from selflearn.bench.retrieval import bench_retrieval
from selflearn.eval.suites.realphrasing import HOME
from selflearn.home import load_home
from selflearn.runtime.encoder import shared_encoder


def test_rows_time_the_lookup_on_a_flat_and_an_approximate_index(caplog: pytest.LogCaptureFixture) -> None:
    home = load_home(HOME)
    with caplog.at_level(logging.INFO, logger="selflearn"):
        rows = bench_retrieval([home], [200, 25_000], queries=30, seed=1, encoder=shared_encoder())
    assert [r.entries for r in rows] == [200, 25_000]  # 25k is past the flat limit: IVF + refine
    for row in rows:
        assert 0 < row.p50_ms <= row.p99_ms and 0 < row.cpu_p50_ms <= row.cpu_p99_ms
        assert 0 < row.encode_p50_ms < row.p99_ms  # the lookup encodes each query, then searches and ranks
        assert 0.0 <= row.accepted_rate <= 1.0
    assert any("25,000" in r.getMessage() for r in caplog.records)  # progress is logged
