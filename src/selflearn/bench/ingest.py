"""``selflearn bench ingest``: validated ingest throughput against raw DuckDB inserts measured in the same run.

The input is a seeded sample log (``logsample``) tiled to the requested size with fresh turn ids, written once as
Parquet and once as JSONL (the same layout ``Turn.model_dump_json`` writes). The baseline inserts the same files
into a table with the same primary key using DuckDB's own readers and no validation; the ratio says what
validation, quarantine bookkeeping and idempotency cost.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from selflearn.schema import ARROW_SCHEMAS, Turn, to_arrow
from selflearn.sim import logsample
from selflearn.store.logstore import Store
from selflearn.store.tables import table_ddl

logger = logging.getLogger(__name__)

_JSON_COLS = Turn.json_fields


def _write_inputs(rows: int, seed: int, folder: Path) -> tuple[Path, Path]:
    base = to_arrow(logsample.generate(min(rows, 20_000), seed=seed).turns, Turn)
    with duckdb.connect(":memory:") as con:
        con.execute("SET TimeZone='UTC'")
        con.register("base", base)
        reps = -(-rows // base.num_rows)
        con.execute(
            "CREATE TABLE tiled AS SELECT base.* REPLACE (turn_id || '-r' || r AS turn_id) "
            f"FROM base, range({reps}) t(r) ORDER BY r, ts LIMIT {rows}"
        )
        parquet = folder / "turns.parquet"
        jsonl = folder / "turns.jsonl"
        con.execute(f"COPY tiled TO '{parquet}' (FORMAT parquet, COMPRESSION zstd)")
        replace = ", ".join(f"{c}::JSON AS {c}" for c in _JSON_COLS)
        con.execute(
            f"COPY (SELECT * REPLACE ({replace}, strftime(ts, '%Y-%m-%dT%H:%M:%S.%f+00:00') AS ts) FROM tiled) "
            f"TO '{jsonl}' (FORMAT json)"
        )
    return parquet, jsonl


def _baseline(path: Path, reader: str, folder: Path) -> float:
    with duckdb.connect(str(folder / f"baseline_{reader}.duckdb")) as con:
        con.execute("SET TimeZone='UTC'")
        con.execute(table_ddl("turns"))
        start = time.perf_counter()
        if reader == "read_parquet":
            con.execute(f"INSERT OR IGNORE INTO turns SELECT * FROM read_parquet('{path}')")
        else:
            cols = ", ".join(f"{c}::VARCHAR" if c in _JSON_COLS else c for c in ARROW_SCHEMAS[Turn].names)
            con.execute(
                f"INSERT OR IGNORE INTO turns SELECT {cols} FROM read_json('{path}', format='newline_delimited')"
            )
        seconds = time.perf_counter() - start
    return seconds


def ingest_bench(rows: int, *, seed: int = 0) -> dict[str, Any]:
    """Rows/s for Parquet and JSONL ingest and for the unvalidated baseline on the same files."""
    out: dict[str, Any] = {"rows": rows, "seed": seed}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        logger.info(f"writing {rows:,} turns as Parquet and JSONL ...")
        parquet, jsonl = _write_inputs(rows, seed, folder)
        for fmt, path, reader in (("parquet", parquet, "read_parquet"), ("jsonl", jsonl, "read_json")):
            logger.info(f"ingesting {fmt} ...")
            with Store(folder / f"{fmt}.duckdb") as store:
                start = time.perf_counter()
                report = store.ingest([path], quarantine=folder / f"{fmt}.quarantine.jsonl")
                seconds = time.perf_counter() - start
            if report.ingested != rows:
                raise RuntimeError(f"{fmt}: ingested {report.ingested} of {rows} valid rows: {report}")
            base_seconds = _baseline(path, reader, folder)
            out[fmt] = {
                "seconds": round(seconds, 3),
                "rows_per_s": round(rows / seconds, 1),
                "rows_per_min": round(60 * rows / seconds),
                "baseline_seconds": round(base_seconds, 3),
                "baseline_rows_per_s": round(rows / base_seconds, 1),
                "ratio_vs_baseline": round(base_seconds / seconds, 4),
            }
    return out
