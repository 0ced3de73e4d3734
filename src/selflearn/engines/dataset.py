"""The logs as a partitioned Parquet dataset (hive layout), readable by both engines and by any cluster.

``ROOT/turns/day=YYYY-MM-DD/home_bucket=HH/part-*.parquet`` and ``ROOT/feedback/day=YYYY-MM-DD/part-*.parquet``:
partition values are UTC dates and the first two hex digits of a home id's SHA-256 (256 buckets), never an id, so
no id becomes a path. A day's logs of one bucket of homes is the unit a cluster reads and a retention job drops.
Written by ``selflearn export --parquet DIR``; each write adds new part files (a uuid in their names), so exporting
more logs into the same root appends and never overwrites. Gold is never written here.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from selflearn.schema import ARROW_SCHEMAS, Feedback, Turn

TURNS = "turns"
FEEDBACK = "feedback"
PARTITIONS = {TURNS: ("day", "home_bucket"), FEEDBACK: ("day",)}


def home_bucket(home_id: pl.Expr) -> pl.Expr:
    """The first two hex digits of SHA-256(home id): spreads homes evenly and names no one."""
    return home_id.map_elements(lambda h: hashlib.sha256(h.encode()).hexdigest()[:2], return_dtype=pl.String)


def write_dataset(root: Path, turns: pl.DataFrame, feedback: pl.DataFrame | None = None) -> dict[str, int]:
    """Append ``turns`` (and ``feedback``) to the dataset under ``root``; rows written per table."""
    written = {TURNS: 0, FEEDBACK: 0}
    homes = turns.select(pl.col("home_id").unique()).with_columns(home_bucket=home_bucket(pl.col("home_id")))
    frames = {TURNS: turns.join(homes, on="home_id", how="left"), FEEDBACK: feedback}
    schemas = {TURNS: ARROW_SCHEMAS[Turn], FEEDBACK: ARROW_SCHEMAS[Feedback]}
    for kind, frame in frames.items():
        if frame is None or frame.height == 0:
            continue
        frame = frame.with_columns(day=pl.col("ts").dt.date().cast(pl.String))
        columns = [*schemas[kind].names, *PARTITIONS[kind]]
        table = frame.select(columns).to_arrow()
        schema = pa.schema([*schemas[kind], *(pa.field(p, pa.string()) for p in PARTITIONS[kind])])
        ds.write_dataset(
            table.cast(schema),
            root / kind,
            format="parquet",
            partitioning=ds.partitioning(
                pa.schema([pa.field(p, pa.string()) for p in PARTITIONS[kind]]), flavor="hive"
            ),
            basename_template=f"part-{uuid.uuid4().hex}-{{i}}.parquet",
            existing_data_behavior="overwrite_or_ignore",
        )
        written[kind] = frame.height
    return written


def read_table(root: Path, kind: str) -> pl.DataFrame:
    """One table of the dataset for the embedded engine, without the partition columns (empty if never written)."""
    schema = ARROW_SCHEMAS[Turn if kind == TURNS else Feedback]
    files = sorted((root / kind).glob("**/*.parquet"))
    if not files:
        frame = pl.from_arrow(schema.empty_table())
        assert isinstance(frame, pl.DataFrame)
        return frame
    return pl.read_parquet(files, hive_partitioning=False).select(schema.names)
