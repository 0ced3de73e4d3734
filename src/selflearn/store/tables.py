"""The store's tables in DuckDB, derived from the record schema: their DDL, column lists, and the migration that
brings an older file's tables to the current schema, so old files keep working."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from selflearn.schema import ARROW_SCHEMAS, RECORD_TYPES, canonical_json
from selflearn.store.connection import StoreError
from selflearn.store.ingest import Kind

_KEYS: dict[Kind, tuple[str, ...]] = {
    "turns": ("turn_id",),
    "gold": ("turn_id",),
    "feedback": ("feedback_id",),
    "preferences": ("user_id", "kind", "key", "scope"),
}
_SQL_TYPES = {
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.int32(): "INTEGER",
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
}


def table_ddl(kind: Kind) -> str:
    schema = ARROW_SCHEMAS[RECORD_TYPES[kind]]
    cols = [f'"{f.name}" {_SQL_TYPES[f.type]}{"" if f.nullable else " NOT NULL"}' for f in schema]
    cols.append("PRIMARY KEY (" + ", ".join(f'"{k}"' for k in _KEYS[kind]) + ")")
    return f"CREATE TABLE IF NOT EXISTS {kind} (" + ", ".join(cols) + ")"


def columns(kind: Kind) -> str:
    """The schema's columns in order: every read and write names them, so a table's physical order never matters."""
    return ", ".join(f'"{n}"' for n in ARROW_SCHEMAS[RECORD_TYPES[kind]].names)


def _sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def migrate(con: duckdb.DuckDBPyConnection, kind: Kind) -> None:
    """Bring an older file's table to the schema: add columns of new optional fields (with the field default) and
    drop NOT NULL from columns that became optional (schema 2: the Turn fields Home Assistant cannot supply)."""
    model = RECORD_TYPES[kind]
    have = dict(
        con.execute("SELECT column_name, is_nullable FROM duckdb_columns() WHERE table_name = ?", [kind]).fetchall()
    )
    for f in ARROW_SCHEMAS[model]:
        if f.name in have:
            if f.nullable and not have[f.name]:
                con.execute(f'ALTER TABLE {kind} ALTER COLUMN "{f.name}" DROP NOT NULL')
            continue
        info = model.model_fields[f.name]
        if info.is_required():
            raise StoreError(f"table {kind} lacks required column {f.name!r}; the store predates this schema")
        default = info.get_default(call_default_factory=True)
        if f.name in model.json_fields:
            default = canonical_json(default)
        clause = "" if default is None else f" DEFAULT {_sql_literal(default)}"
        con.execute(f'ALTER TABLE {kind} ADD COLUMN "{f.name}" {_SQL_TYPES[f.type]}{clause}')
