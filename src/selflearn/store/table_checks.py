"""Vectorised validity checks of whole Arrow tables (DuckDB over a batch), equal to the per-row models."""

from __future__ import annotations

import typing
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import annotated_types
import duckdb
import numpy as np
import pyarrow as pa

from selflearn import safejson
from selflearn.ids import IdFormat
from selflearn.schema import (
    ARROW_SCHEMAS,
    MAX_TEXT_CHARS,
    MAX_TS,
    MIN_TS,
    RECORD_TYPES,
    LogRecord,
    canonical_json,
)
from selflearn.store import fastpath

if TYPE_CHECKING:
    from selflearn.store.ingest import Kind


def check_table(table: pa.Table, kind: Kind) -> tuple[pa.Table, list[tuple[int, dict[str, Any]]]]:
    """Split a batch into rows that certainly validate (cast to the schema) and (index, row) pairs to check singly."""
    model = RECORD_TYPES[kind]
    schema = ARROW_SCHEMAS[model]
    conformed = _conform(table, model)
    if conformed is None:
        return schema.empty_table(), list(enumerate(table.to_pylist()))
    columns = [f'"{name}"' for name in model.json_fields]
    keys = "".join(  # each JSON cell's keys by level, parsed once (and only if it parses: json_keys raises)
        f", CASE WHEN json_valid({col}) THEN json_keys({col}) END AS _keys{i}"
        f", CASE WHEN json_valid({col}) THEN json_keys({col}, '$.*') END AS _child_keys{i}"
        for i, col in enumerate(columns)
    )
    flags = "".join(
        f", ({_plain_json(col)}) IS TRUE AS plain{i}, ({_unique_keys(col, i)}) IS TRUE AS unique{i}"
        for i, col in enumerate(columns)
    )
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone='UTC'")
        con.register("batch", conformed)
        query = f"SELECT ({predicate(model)}) IS TRUE AS _ok{flags} FROM (SELECT *{keys} FROM batch)"
        flags_table = con.sql(query).to_arrow_table()
    finally:
        con.close()
    ok = np.array(flags_table.column("_ok").to_numpy(), dtype=bool)  # writable: JSON cells may still fail
    conformed = _check_json_cells(conformed, model, ok, flags_table)
    valid = conformed.filter(pa.array(ok, pa.bool_())).cast(schema)
    bad_idx = np.flatnonzero(~ok).tolist()
    rejected = table.take(bad_idx).to_pylist() if bad_idx else []
    return valid, list(zip(bad_idx, rejected, strict=True))


# Cheap sufficient conditions for a JSON object's text to be within ``safejson``'s limits, duplicate keys aside:
# short enough that no spelling can exceed the size limit, fewer brackets than the depth limit, and no NaN,
# Infinity, number of 19+ digits or 3-digit exponent, surrogate escape, or space before a key's colon. A text that
# contains one of those (perhaps only inside a string) is parsed in full instead.
_PLAIN_RE = r'NaN|Infinity|[0-9]{19}|[eE][+-]?[0-9]{3}|\\u[dD][89a-fA-F]|"\s+:'


def _plain_json(col: str) -> str:
    return (
        f"length({col}) <= {safejson.MAX_CHARS // fastpath.NUMBER_GROWTH}"
        f" AND length({col}) - length(replace(replace({col}, '{{', ''), '[', '')) <= {safejson.MAX_DEPTH}"
        f" AND NOT regexp_matches({col}, '{_PLAIN_RE}')"
    )


def _unique_keys(col: str, i: int) -> str:
    """No key twice: at most one key (a key ends in ``":``), or objects only at the top level and one level down (as
    many ``{`` as those objects) with no key twice in any of them. Meant for plain cells; false means "not settled".
    ``_keys{i}`` and ``_child_keys{i}`` are the cell's ``json_keys`` at ``$`` and ``$.*`` (see ``check_table``)."""
    return (
        f"CASE WHEN length({col}) - length(replace({col}, '\":', '')) <= 2 THEN TRUE"
        f" ELSE length({col}) - length(replace({col}, '{{', ''))"
        f" = 1 + len(list_filter(_child_keys{i}, lambda k: len(k) > 0))"
        f" AND len(_keys{i}) = len(list_distinct(_keys{i}))"
        f" AND list_bool_and(list_transform(_child_keys{i}, lambda k: len(k) = len(list_distinct(k)))) END"
    )


def _check_json_cells(table: pa.Table, model: type[LogRecord], ok: np.ndarray, flags: pa.Table) -> pa.Table:
    """Finish the JSON cells of the rows still ``ok`` (DuckDB's ``json_valid`` takes NaN, duplicate keys, any depth).

    Plain cells (``_plain_json``) that DuckDB found free of duplicate keys (``_unique_keys``) are done; other plain
    cells are checked for a duplicate key in Python; any other cell is parsed by ``safejson`` and stored in canonical
    spelling. A cell that fails marks its row not ok, so pydantic says why.
    """
    for i, name in enumerate(model.json_fields):
        is_plain = flags.column(f"plain{i}").to_numpy()
        todo = np.flatnonzero(ok & ~(is_plain & flags.column(f"unique{i}").to_numpy()))
        if not todo.size:
            continue
        cells = table.column(name).to_pylist()
        for j in todo.tolist():
            try:
                if is_plain[j]:
                    ok[j] = not safejson.has_duplicate_keys(cells[j].encode())
                else:
                    cells[j] = safejson.check(safejson.loads(cells[j]))
            except safejson.JsonLimitError:
                ok[j] = False
        field = table.schema.field(name)
        table = table.set_column(table.schema.get_field_index(name), field, pa.array(cells, pa.string()))
    return table


def _conform(table: pa.Table, model: type[LogRecord]) -> pa.Table | None:
    """The batch with exactly the schema's columns and types, or None if it needs row-by-row checking.

    A column the file lacks is filled with the field's default when it has one (a file from before an optional
    field was added); an unknown column, or a type from another family, means row by row.
    """
    schema = ARROW_SCHEMAS[model]
    if not set(table.schema.names) <= set(schema.names):
        return None
    columns = []
    for fld in schema:
        if fld.name not in table.schema.names:
            info = model.model_fields[fld.name]
            if info.is_required():
                return None
            default = info.get_default(call_default_factory=True)
            value = canonical_json(default) if fld.name in model.json_fields else default
            columns.append(pa.array([value] * table.num_rows, type=fld.type))
            continue
        col = table.column(fld.name)
        src = col.type
        target = fld.type
        if src == target:
            columns.append(col)
            continue
        same_family = (
            (pa.types.is_string(target) and (pa.types.is_large_string(src) or pa.types.is_string_view(src)))
            or (pa.types.is_integer(target) and pa.types.is_integer(src))
            or (pa.types.is_floating(target) and pa.types.is_floating(src))
            or (pa.types.is_timestamp(target) and pa.types.is_timestamp(src) and src.tz is not None)
        )
        if not same_family:
            return None
        try:
            columns.append(col.cast(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
    nullable = pa.schema([pa.field(f.name, f.type, True) for f in schema])
    return pa.Table.from_arrays(columns, schema=nullable)


def predicate(model: type[LogRecord]) -> str:
    """A DuckDB boolean expression true only for rows that pydantic accepts, derived from the model's fields.

    JSON fields are only checked to be JSON objects here; ``_check_json_cells`` finishes them.
    """
    checks = []
    for name, info in model.model_fields.items():
        col = f'"{name}"'
        ann = info.annotation
        optional = fastpath.is_optional(ann)
        base = fastpath.strip_none(ann)
        conds: list[str] = []
        if name in model.json_fields:
            conds.append(f"json_valid({col}) AND regexp_matches({col}, '^\\s*\\{{')")
        elif typing.get_origin(base) is Literal:
            values = ", ".join("'" + str(v).replace("'", "''") + "'" for v in typing.get_args(base))
            conds.append(f"{col} IN ({values})")
        elif base is str:
            conds.append(f"length({col}) <= {MAX_TEXT_CHARS}")
        elif base is datetime:
            conds.append(f"{col} >= TIMESTAMPTZ '{MIN_TS.isoformat()}' AND {col} < TIMESTAMPTZ '{MAX_TS.isoformat()}'")
        elif base is float:
            conds.append(f"isfinite({col})")
        for meta in info.metadata:
            if isinstance(meta, annotated_types.MinLen):
                conds.append(f"length({col}) >= {meta.min_length}")
            elif isinstance(meta, annotated_types.MaxLen):
                conds.append(f"length({col}) <= {meta.max_length}")
            elif isinstance(meta, annotated_types.Ge):
                conds.append(f"{col} >= {meta.ge}")
            elif isinstance(meta, annotated_types.Le):
                conds.append(f"{col} <= {meta.le}")
            elif isinstance(meta, IdFormat):
                conds.append(f"regexp_full_match({col}, '{meta.core}')")
        body = " AND ".join(conds) if conds else "TRUE"
        checks.append(f"({col} IS NULL OR ({body}))" if optional else f"({col} IS NOT NULL AND ({body}))")
    return " AND ".join(checks)
