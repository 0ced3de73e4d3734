"""DuckDB connections for the log store and its views: opened with a clear one-line error, used by one thread at a
time, and the small query helpers both share."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl
import pyarrow as pa

from selflearn.errors import NotFound, SelflearnError
from selflearn.schema import ARROW_SCHEMAS, RECORD_TYPES
from selflearn.store.ingest import Kind


class StoreError(SelflearnError, RuntimeError):
    """The store cannot be opened (e.g. another process holds it: DuckDB allows one writing process per file)."""


class NoStore(NotFound, StoreError):
    """A reader named a store that does not exist (exit 2, 404): a typo must not become a new, empty store."""


def connect(path: Path | str) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as e:
        held = re.search(r"Conflicting lock is held in .*\(PID (\d+)\)", str(e))
        if held:
            raise StoreError(f"cannot open log store {path}: it is in use by another process (pid {held[1]})") from e
        reason = str(e).removeprefix("IO Error: ").split(". See also")[0]
        raise StoreError(f"cannot open log store {path}: {reason}") from e
    con.execute("SET TimeZone='UTC'")
    return con


def count(con: duckdb.DuckDBPyConnection, query: str, params: Sequence[object] = ()) -> int:
    """The single number a count/INSERT/DELETE statement returns (fetching it completes the statement)."""
    rows = con.execute(query, list(params)).fetchall()
    return int(rows[0][0]) if rows else 0


def to_frame(table: pa.Table, kind: Kind) -> pl.DataFrame:
    schema = ARROW_SCHEMAS[RECORD_TYPES[kind]]
    frame = pl.from_arrow(table.select(schema.names))
    assert isinstance(frame, pl.DataFrame)
    return frame


F = TypeVar("F", bound=Callable[..., Any])


def locked(method: F) -> F:
    """One operation at a time per object: a DuckDB connection must not be used by two threads at once (service)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def where_clause(conditions: list[tuple[str, object]]) -> tuple[str, list[object]]:
    """A parameterised WHERE clause from the conditions whose value is given (None means "any")."""
    given = [(sql, value) for sql, value in conditions if value is not None]
    clause = (" WHERE " + " AND ".join(sql for sql, _ in given)) if given else ""
    return clause, [value for _, value in given]
