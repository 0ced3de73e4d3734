"""``selflearn bench learn --engine spark``: the same generated logs mined by both engines in the same run.

The logs are written once as the Parquet dataset (``engines.dataset``); each engine's clock covers reading that
dataset, scoring the signals and mining the tables (global, personal). The Spark session's start-up is timed apart
(a cluster keeps one running). The result also says whether the two engines' tables were equal.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selflearn.engines.dataset import TURNS, read_table, write_dataset
from selflearn.learners.mining import MiningConfig, RewriteMiner, RewriteTables
from selflearn.learners.signals import DefectSignals
from selflearn.sim.synthlogs import SynthConfig, generate


def same_tables(a: RewriteTables, b: RewriteTables, tolerance: float = 1e-9) -> bool:
    """Same rows, support and distinct counts; probabilities within ``tolerance``."""
    for name in ("global_table", "personal_table", "pattern_table"):
        x = getattr(a, name).sort("user_id", "source", nulls_last=True)
        y = getattr(b, name).sort("user_id", "source", nulls_last=True)
        if not x.drop("probability").equals(y.drop("probability")):
            return False
        if x.height and float((x["probability"] - y["probability"]).abs().max()) >= tolerance:
            return False
    return True


def engines_bench(
    n_turns: int, *, seed: int = 0, master: str = "local[2]", log: Callable[[str], None]
) -> dict[str, Any]:
    from selflearn.engines.spark import SparkMiner, read_logs, session

    config = MiningConfig()
    log(f"generating {n_turns:,} turns")
    turns, _ = generate(n_turns, seed=seed, config=SynthConfig(n_users=max(50, n_turns // 500), days=7))
    with tempfile.TemporaryDirectory(prefix="selflearn-bench-") as scratch:
        root = Path(scratch)
        write_dataset(root, turns)
        log("embedded engine (Polars/DuckDB)")
        start = time.perf_counter()
        embedded = RewriteMiner(config).fit_frame(DefectSignals(config.signals).score_frame(read_table(root, TURNS)))
        embedded_s = time.perf_counter() - start
        log(f"Spark engine ({master})")
        start = time.perf_counter()
        spark = session(master, shuffle_partitions=max(2, min(200, n_turns // 250_000)))
        session_s = time.perf_counter() - start
        try:
            start = time.perf_counter()
            spark_turns, spark_feedback = read_logs(spark, str(root))
            mined = SparkMiner(spark, config).fit(spark_turns, spark_feedback)
            spark_s = time.perf_counter() - start
        finally:
            spark.stop()
    return {
        "turns": turns.height,
        "master": master,
        "duckdb_seconds": round(embedded_s, 3),
        "duckdb_turns_per_min": turns.height / embedded_s * 60.0,
        "spark_session_seconds": round(session_s, 3),
        "spark_seconds": round(spark_s, 3),
        "spark_turns_per_min": turns.height / spark_s * 60.0,
        "spark_time_vs_duckdb": spark_s / embedded_s,
        "same_tables": same_tables(embedded, mined),
        "global_rewrites": embedded.global_table.height,
        "personal_rewrites": embedded.personal_table.height,
        "loadavg_1min": os.getloadavg()[0],
    }
