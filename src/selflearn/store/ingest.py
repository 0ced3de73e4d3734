"""Reading untrusted JSONL/Parquet logs into validated Arrow batches, with every bad row explained in quarantine.

The store decides *where* rows go; this module decides *whether* a row is a valid record. pydantic (``schema.py``)
is the one definition of valid; two faster checks derived from its fields and stricter than it do the bulk of the
work: JSONL lines are decoded by a msgspec mirror (``fastpath``), Parquet batches are checked column-wise in DuckDB
by one predicate. Only the rows those reject go through per-row pydantic, which accepts them after all or gives the
human-readable reason. A row is never dropped: it is stored, counted as a duplicate, or quarantined (with its raw
text in full, or its first ``RAW_PREVIEW_BYTES`` for a line over the size limit).

Nothing untrusted reaches a recursive parser unchecked: a JSONL line's size and nesting depth are measured on its
bytes first (``safejson``), Parquet is read one row group at a time so a corrupt group costs only its own rows, and
every stored JSON value is within ``safejson``'s limits, so whatever reads the store later can parse it.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from selflearn import safejson
from selflearn.errors import UsageError
from selflearn.schema import (
    RECORD_TYPES,
    LogRecord,
    to_arrow,
)
from selflearn.store import fastpath
from selflearn.store.table_checks import check_table

Kind = Literal["turns", "gold", "feedback", "preferences"]


KINDS: tuple[Kind, ...] = ("turns", "gold", "feedback", "preferences")


JSONL_SUFFIXES = (".jsonl", ".ndjson")


PARQUET_SUFFIXES = (".parquet", ".pq")


BATCH_ROWS = 50_000


MAX_LINE_BYTES = 4 * 1024 * 1024  # no valid record is this long; a longer JSONL line is quarantined unparsed


LINE_DEPTH = safejson.MAX_DEPTH + 1  # a record is an object holding JSON values of at most MAX_DEPTH levels


RAW_PREVIEW_BYTES = 64 * 1024  # what the quarantine keeps of a line over MAX_LINE_BYTES


# Fields only one record kind has: how a row from a file without a kind prefix says what it is.
_MARKERS: tuple[tuple[str, Kind], ...] = (
    ("true_text", "gold"),
    ("feedback_id", "feedback"),
    ("asr_text", "turns"),
    ("value", "preferences"),
)


class IngestError(UsageError):
    """A path that cannot be ingested at all (missing, or not a JSONL/Parquet file)."""


@dataclass(frozen=True)
class Quarantined:
    """One rejected row: enough to find it (source, line) and to fix it (raw text, reason)."""

    source: str
    """File (or stream name) the row came from."""
    line: int
    """1-based line number in that source."""
    raw: str
    """The row's raw text, as read."""
    reason: str
    """Why it was rejected, one line."""
    kind: str | None = None
    """Record kind it claimed to be (turn, gold, feedback), if it could be read."""

    def to_json(self) -> str:
        return json.dumps(
            {"source": self.source, "line": self.line, "kind": self.kind, "reason": self.reason, "raw": self.raw},
            ensure_ascii=False,
        )


@dataclass
class Batch:
    """Valid rows of one kind (as an Arrow table in the schema's layout) plus the rows rejected alongside them."""

    source: str
    """File (or stream name) the rows came from."""
    read: int
    """Rows read from the source."""
    tables: dict[Kind, pa.Table] = field(default_factory=dict)
    """Record kind -> its valid rows."""
    quarantined: list[Quarantined] = field(default_factory=list)
    """Rows rejected, with why."""
    size_bytes: int = 0
    """Bytes read from the source."""


def kind_of_name(path: Path) -> Kind | None:
    """A file declares its kind by its name's prefix: turns*, gold*, feedback*, preferences*."""
    name = path.name.lower()
    for kind in KINDS:
        if name.startswith(kind):
            return kind
    return None


def kind_of_fields(names: Iterable[str]) -> Kind | None:
    keys = set(names)
    for marker, kind in _MARKERS:
        if marker in keys:
            return kind
    return None


def discover(paths: Iterable[str | Path]) -> list[Path]:
    """Expand folders (recursively, sorted) into JSONL/Parquet files; an explicit path must be one of those."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            suffixes = JSONL_SUFFIXES + PARQUET_SUFFIXES
            found.extend(p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in suffixes)
        elif path.is_file():
            if path.suffix.lower() not in JSONL_SUFFIXES + PARQUET_SUFFIXES:
                raise IngestError(f"{path}: not a JSONL (.jsonl/.ndjson) or Parquet (.parquet) file")
            found.append(path)
        else:
            raise IngestError(f"{path}: no such file or folder")
    return found


def describe(error: ValidationError) -> str:
    """A pydantic error in one line a person can act on: ``field: message; field: message``."""
    parts = []
    for e in error.errors(include_url=False):
        if e["type"] == "json_invalid":
            parts.append(f"bad JSON: {e['ctx'].get('error', e['msg']) if 'ctx' in e else e['msg']}")
            continue
        msg = str(e["ctx"]["error"]) if e["type"] == "value_error" and "ctx" in e else e["msg"]
        loc = ".".join(str(x) for x in e["loc"])
        parts.append(f"{loc}: {msg}" if loc else msg)  # a record-level check names its field itself
    return "; ".join(parts)


def read_jsonl(path: Path, batch_rows: int = BATCH_ROWS) -> Iterator[Batch]:
    """Validate a JSONL file line by line, yielding one Batch per ``batch_rows`` non-blank lines.

    Each line first tries the strict msgspec mirror (``fastpath``) of the file's declared kind, or in an undeclared
    file of the kind of the last line pydantic accepted (a mirror only accepts rows with its kind's marker field and
    no other kind's fields, so this agrees with the per-row rule); lines it does not accept go to pydantic.
    """
    declared = kind_of_name(path)
    source = str(path)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below; an unreadable file is one quarantine entry
    except OSError as e:
        yield Batch(source, 1, quarantined=[Quarantined(source, 0, "", f"unreadable file: {e}", declared)])
        return
    guess = declared
    with f:
        lineno = 0
        while True:
            batch = Batch(source=source, read=0)
            fast: dict[Kind, list[Any]] = {}
            records: dict[Kind, list[LogRecord]] = {}
            for raw, size in _lines(f):
                lineno += 1
                batch.size_bytes += size
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (Windows tools)
                    raw = raw[3:]
                if not raw.strip():
                    continue
                batch.read += 1
                unsafe = _unsafe(raw, size)
                if unsafe:
                    text = raw[:RAW_PREVIEW_BYTES].decode("utf-8", "backslashreplace").rstrip("\r\n")
                    batch.quarantined.append(Quarantined(source, lineno, text, unsafe, declared))
                    continue
                row = fastpath.decode(RECORD_TYPES[guess], raw) if guess is not None else None
                if guess is not None and row is not None:
                    fast.setdefault(guess, []).append(row)
                else:
                    kind, record, reason, text = _validate_line(raw, declared)
                    if record is not None and kind is not None:
                        records.setdefault(kind, []).append(record)
                        guess = kind
                    else:
                        batch.quarantined.append(Quarantined(source, lineno, text, reason, kind))
                if batch.read >= batch_rows:
                    break
            if batch.size_bytes == 0:
                return
            for kind in KINDS:
                parts = []
                if kind in fast:
                    parts.append(fastpath.to_table(fast[kind], RECORD_TYPES[kind]))
                if kind in records:
                    parts.append(to_arrow(records[kind], RECORD_TYPES[kind]))
                if parts:
                    batch.tables[kind] = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
            yield batch


def _lines(f: typing.BinaryIO) -> Iterator[tuple[bytes, int]]:
    """Each line and its size in bytes, reading at most ``MAX_LINE_BYTES`` of it: an endless line costs no memory."""
    while raw := f.readline(MAX_LINE_BYTES + 1):
        size = len(raw)
        if size > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raw = raw[:RAW_PREVIEW_BYTES]
            while rest := f.readline(RAW_PREVIEW_BYTES):
                size += len(rest)
                if rest.endswith(b"\n"):
                    break
        yield raw, size


def _unsafe(raw: bytes, size: int) -> str:
    """Why a line must not be parsed at all (too long, nested too deep), or "" if parsing it is safe."""
    if size > MAX_LINE_BYTES:
        return f"line of {size:,} bytes (limit {MAX_LINE_BYTES:,})"
    if safejson.too_deep(raw, LINE_DEPTH):
        return f"JSON nested {safejson.depth(raw)} levels deep (limit {LINE_DEPTH})"
    return ""


def _validate_line(raw: bytes, declared: Kind | None) -> tuple[Kind | None, LogRecord | None, str, str]:
    """Per-row pydantic for a line the fast path did not take: the record, or the reason it is not one."""
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as e:
        return declared, None, f"invalid UTF-8 at byte {e.start}", raw.decode("utf-8", "backslashreplace").rstrip()
    kind = declared
    try:
        data = safejson.loads(text, max_depth=LINE_DEPTH, max_bytes=MAX_LINE_BYTES)  # duplicate keys, NaN, ...
    except safejson.JsonLimitError as e:
        return kind, None, str(e), text
    if not isinstance(data, dict):
        return kind, None, f"not a JSON object (got {type(data).__name__})", text
    try:
        if kind is None:
            kind = kind_of_fields(data)
            if kind is None:
                return None, None, "cannot tell the record kind (no turns/gold/feedback/preferences fields)", text
            return kind, RECORD_TYPES[kind].model_validate(data), "", text
        return kind, RECORD_TYPES[kind].model_validate_json(text), "", text
    except ValidationError as e:
        return kind, None, describe(e), text


def read_parquet(path: Path, batch_rows: int = BATCH_ROWS) -> Iterator[Batch]:
    """Validate a Parquet file row group by row group: a vectorised DuckDB check, per-row pydantic for what it rejects.

    A file that cannot be opened becomes one quarantine entry (line 0). A row group that cannot be decoded costs only
    its own rows not yet read: one entry each, with the values of the columns that can still be read as raw text.
    """
    source = str(path)
    try:
        pf = pq.ParquetFile(path)
        groups = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
    except (pa.ArrowException, OSError) as e:
        yield Batch(source, 1, quarantined=[Quarantined(source, 0, "", f"unreadable Parquet file: {_one_line(e)}")])
        return
    kind = kind_of_name(path) or kind_of_fields(pf.schema_arrow.names)
    bytes_per_row = path.stat().st_size / max(sum(groups), 1)
    line = 0
    for group, n_rows in enumerate(groups):
        done = 0
        batches = pf.iter_batches(batch_size=batch_rows, row_groups=[group])
        while done < n_rows:
            try:
                rb = next(batches)
            except StopIteration:
                error = f"row group {group} ended after {done} of {n_rows} rows"
            except (pa.ArrowException, OSError) as e:
                error = _one_line(e)
            else:
                table = pa.Table.from_batches([rb])
                batch = Batch(source=source, read=table.num_rows, size_bytes=int(bytes_per_row * table.num_rows))
                _check_batch(batch, table, kind, line + done)
                done += table.num_rows
                yield batch
                continue
            lost = _salvage(pf, group, done, n_rows, f"undecodable Parquet data: {error}")
            entries = [
                Quarantined(source, line + done + i + 1, raw, reason, kind) for i, (raw, reason) in enumerate(lost)
            ]
            yield Batch(source, len(entries), quarantined=entries, size_bytes=int(bytes_per_row * len(entries)))
            break
        line += n_rows


def _one_line(error: Exception) -> str:
    """An Arrow/OS error message on one line (Arrow's span several)."""
    return " ".join(str(error).split())


def _salvage(pf: pq.ParquetFile, group: int, start: int, stop: int, reason: str) -> list[tuple[str, str]]:
    """(raw, reason) for rows ``start:stop`` of a row group that does not decode: what its readable columns hold."""
    readable: dict[str, list[Any]] = {}
    broken: list[str] = []
    for name in pf.schema_arrow.names:
        try:
            values = pf.read_row_group(group, columns=[name]).column(0).slice(start, stop - start).to_pylist()
        except (pa.ArrowException, OSError, UnicodeDecodeError):
            values = []
        if len(values) == stop - start:
            readable[name] = values
        else:
            broken.append(name)
    if broken:
        reason += f" (unreadable columns: {', '.join(broken)})"
    if not readable:
        return [("", reason)] * (stop - start)
    return [(_row_json({n: v[i] for n, v in readable.items()}), reason) for i in range(stop - start)]


def _check_batch(batch: Batch, table: pa.Table, kind: Kind | None, line: int) -> None:
    """Fill ``batch`` with the valid rows of ``table`` and a quarantine entry for each invalid one."""
    source = batch.source
    positions = list(range(table.num_rows))
    try:
        table.validate(full=True)
    except pa.ArrowInvalid:  # invalid UTF-8 in a string column: find the rows, keep the rest
        positions = []
        for i in range(table.num_rows):
            row = table.slice(i, 1)
            try:
                row.validate(full=True)
            except pa.ArrowInvalid as e:
                batch.quarantined.append(Quarantined(source, line + i + 1, _raw_bytes(row), _one_line(e), kind))
                continue
            positions.append(i)
        table = table.take(positions)
    if kind is None:
        for i, r in zip(positions, table.to_pylist(), strict=True):
            batch.quarantined.append(Quarantined(source, line + i + 1, _row_json(r), "cannot tell the record kind"))
        return
    model = RECORD_TYPES[kind]
    valid, rejected = check_table(table, kind)
    accepted: list[LogRecord] = []
    for index, row in rejected:
        try:
            accepted.append(model.model_validate(row))
        except ValidationError as e:
            raw = _row_json(row)
            batch.quarantined.append(Quarantined(source, line + positions[index] + 1, raw, describe(e), kind))
    batch.tables[kind] = pa.concat_tables([valid, to_arrow(accepted, model)]) if accepted else valid
    batch.quarantined.sort(key=lambda q: q.line)


def _raw_bytes(row: pa.Table) -> str:
    """A row whose strings may be invalid UTF-8, readable: such bytes as backslash escapes."""
    out: dict[str, Any] = {}
    for name, col in zip(row.column_names, row.columns, strict=True):
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            value = col.cast(pa.binary() if pa.types.is_string(col.type) else pa.large_binary())[0].as_py()
            out[name] = None if value is None else value.decode("utf-8", "backslashreplace")
        else:
            out[name] = col[0].as_py()
    return _row_json(out)


def _row_json(row: dict[str, Any]) -> str:
    return json.dumps(row, default=str, ensure_ascii=False)


def read_file(path: Path, batch_rows: int = BATCH_ROWS) -> Iterator[Batch]:
    reader: Callable[[Path, int], Iterator[Batch]] = (
        read_parquet if path.suffix.lower() in PARQUET_SUFFIXES else read_jsonl
    )
    return reader(path, batch_rows)
