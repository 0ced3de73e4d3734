"""What learners read: a ``LogView`` holds zero-copy views of ``turns`` and ``feedback`` snapshots (Arrow) in an
in-memory DuckDB with file access switched off and the configuration locked, so no query can reach gold or files."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

import duckdb
import polars as pl
import pyarrow as pa

from selflearn.schema import ARROW_SCHEMAS, RECORD_TYPES, Feedback, Turn, to_arrow
from selflearn.store.connection import count, locked, to_frame, where_clause
from selflearn.store.ingest import Kind


class LogView:
    """What learners read: the ``turns`` and ``feedback`` tables and nothing else (no gold, no files)."""

    def __init__(self, turns: pa.Table, feedback: pa.Table):
        self._lock = threading.RLock()
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone='UTC'")
        tables: dict[Kind, pa.Table] = {"turns": turns, "feedback": feedback}
        for kind, table in tables.items():  # zero-copy views over the Arrow tables, in the schema's column layout
            self._con.register(kind, table.select(ARROW_SCHEMAS[RECORD_TYPES[kind]].names))
        self._con.execute("SET enable_external_access = false")
        self._con.execute("SET lock_configuration = true")

    @classmethod
    def from_records(cls, turns: Sequence[Turn], feedback: Sequence[Feedback] = ()) -> LogView:
        """An in-memory view over records (tests, simulations), the same shape as ``Store.logs()``."""
        return cls(to_arrow(turns, Turn), to_arrow(feedback, Feedback))

    @locked
    def turns(
        self,
        *,
        user_id: str | None = None,
        home_id: str | None = None,
        session_id: str | None = None,
        dialogue_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> pl.DataFrame:
        """Turns ordered by time; ``since`` inclusive, ``until`` exclusive."""
        clause, params = where_clause(
            [
                ("user_id = ?", user_id),
                ("home_id = ?", home_id),
                ("session_id = ?", session_id),
                ("dialogue_id = ?", dialogue_id),
                ("ts >= ?", since),
                ("ts < ?", until),
            ]
        )
        table = self._con.sql(f"SELECT * FROM turns{clause} ORDER BY ts, turn_id", params=params).to_arrow_table()
        return to_frame(table, "turns")

    @locked
    def feedback(self, *, user_id: str | None = None) -> pl.DataFrame:
        clause, params = ("WHERE user_id = ?", [user_id]) if user_id is not None else ("", [])
        query = f"SELECT * FROM feedback {clause} ORDER BY ts, feedback_id"
        table = self._con.sql(query, params=params).to_arrow_table()
        return to_frame(table, "feedback")

    @locked
    def sql(self, query: str) -> pl.DataFrame:
        """Any read query over ``turns`` and ``feedback`` (there is nothing else to read)."""
        frame = pl.from_arrow(self._con.sql(query).to_arrow_table())
        assert isinstance(frame, pl.DataFrame)
        return frame

    @locked
    def __len__(self) -> int:
        return count(self._con, "SELECT count(*) FROM turns")
