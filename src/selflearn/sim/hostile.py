"""A hostile log corpus: valid turns whose count is known, mixed with every kind of line or row that breaks parsers.

``logsample``'s corruption injector breaks rows the way a buggy pipeline does; this one attacks the reader itself:
nesting thousands deep, lines of megabytes, numbers that overflow, NaN, duplicate keys, string booleans, invalid
UTF-8, byte-order marks mid-file, and seeded fuzz (truncation, byte flips, wrong types) of valid rows. Parquet gets a
file with one corrupt row group among five and a file of hostile JSON cells. The ``ingest`` suite ingests it and
checks from disk that nothing valid was lost, every line is accounted for, and every stored row reads back.

Every row that is not one of the known-valid ones gets its own ``turn_id`` (``x…``) so that, stored or not, it can
never be mistaken for a valid row or a duplicate of one; fuzzed rows may turn out valid, which is fine.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from selflearn.home import Home
from selflearn.schema import ARROW_SCHEMAS, Turn, to_arrow
from selflearn.sim import logsample

Row = dict[str, Any]


@dataclass
class HostileCorpus:
    """The files written and what ingest must make of them."""

    paths: list[Path]
    """The JSONL and Parquet files, in ingest order."""
    valid_ids: set[str]
    """``turn_id`` of every row that is valid as written: each must end up stored."""
    duplicates: int
    """Extra copies of valid rows: each must be counted as a duplicate, not stored twice."""
    lines: int
    """Non-blank lines plus Parquet rows written: what ingest must report as read."""
    kinds: Counter[str] = field(default_factory=Counter)
    """Hostile lines/rows written per kind."""


def _json(row: Row) -> bytes:
    return json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode()


def _nest(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def _swap(row: Row, name: str, text: str) -> bytes:
    """The row as a line with field ``name`` spelled exactly ``text`` (which need not be JSON at all)."""
    marker = "\x00MARK\x00"
    return _json({**row, name: marker}).replace(json.dumps(marker).encode(), text.encode())


# How often each kind comes round relative to the others: the big ones (100 KB to 200 KB a line) less often.
_RARE = {"deep_line": 1, "huge_string": 1, "huge_json_value": 1}


def _line_kinds() -> dict[str, Callable[[random.Random, Row], bytes]]:
    """Hostile JSONL line makers: each takes a valid row (already given a fresh ``x…`` id) and returns one line."""

    def flip(rng: random.Random, row: Row) -> bytes:
        line = bytearray(_json(row))
        for _ in range(rng.randint(1, 4)):
            line[rng.randrange(len(line))] = rng.randrange(256)
        return bytes(line).replace(b"\n", b" ")

    def truncate(rng: random.Random, row: Row) -> bytes:
        line = _json(row)
        return line[: rng.randrange(1, len(line))]

    def missing(rng: random.Random, row: Row) -> bytes:
        gone = rng.choice(("ts", "user_id"))
        return _json({k: v for k, v in row.items() if k != gone})

    def wrong_type(rng: random.Random, row: Row) -> bytes:
        name = rng.choice(sorted(set(row) - {"turn_id"}))  # two rows typed "x" would be duplicates, not hostile
        value = rng.choice([[], {}, [1, "a"], {"k": None}, 0, -1, 1.5, "", "x", None, True, False, "1", "null"])
        return _json({**row, name: value})

    return {
        "deep_trace": lambda rng, row: _swap(row, "trace", '{"a":' + _nest(rng.choice((40, 1_000, 5_000))) + "}"),
        "deep_line": lambda rng, row: _nest(rng.choice((1_000, 100_000)), _json(row).decode()).encode(),
        "deep_string_form": lambda rng, row: _swap(row, "trace", json.dumps('{"a":' + _nest(3_000) + "}")),
        "huge_string": lambda rng, row: _swap(row, "asr_text", json.dumps("a" * rng.choice((10_001, 200_000)))),
        "huge_json_value": lambda rng, row: _swap(row, "device_state_snapshot", json.dumps({"x": "y" * 120_000})),
        "huge_number": lambda rng, row: (
            _swap(row, rng.choice(("asr_confidence", "nlu_slots", "schema_version")), rng.choice(("1e400", "-1e999")))
            if rng.random() < 0.5
            else _swap(row, "nlu_slots", '{"n":' + "9" * rng.choice((20, 5_000)) + "}")
        ),
        "nan_infinity": lambda rng, row: (
            _swap(row, rng.choice(("asr_confidence", "response_latency_ms", "trace")), rng.choice(("NaN", "Infinity")))
            if rng.random() < 0.5
            else _swap(row, "nlu_slots", '{"x":' + rng.choice(("NaN", "-Infinity", "1e400")) + "}")
        ),
        "string_bool": lambda rng, row: _swap(row, "barge_in", rng.choice(('"yes"', '"true"', '"false"', "1", "0"))),
        "duplicate_key": lambda rng, row: (
            _json(row)[:-1] + b',"barge_in":true}'
            if rng.random() < 0.5
            else _swap(row, "trace", '{"a":1,"b":{"c":1,"c":2}}')
        ),
        "lone_surrogate": lambda rng, row: _swap(row, "asr_text", '"turn on \\ud800 the light"'),
        "invalid_utf8": lambda rng, row: _swap(row, "asr_text", '"turn on the light"').replace(
            b"turn on", rng.choice((b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82"))
        ),
        "mid_file_bom": lambda rng, row: b"\xef\xbb\xbf" + _json(row),
        "nul_and_control": lambda rng, row: (
            _swap(row, "asr_text", '"turn\x01on"')
            if rng.random() < 0.5
            else _json(row).replace(b'"asr_text":', b'"asr_text":\x00')
        ),
        "not_object": lambda rng, row: rng.choice((b"[]", b"null", b'"turn on"', b"42", b"[" + _json(row) + b"]")),
        "unknown_field": lambda rng, row: _json({**row, "__proto__": {"polluted": True}}),
        "missing_field": missing,
        "bad_timestamp": lambda rng, row: _swap(
            row, "ts", rng.choice(('"2026-13-45T00:00:00Z"', '"2026-03-02T06:00:00"', '"9999-12-31T23:59:59Z"', "0"))
        ),
        "truncated": truncate,
        "byte_flip": flip,
        "wrong_type": wrong_type,
    }


def _valid_odd(rng: random.Random, row: Row) -> bytes:
    """A valid row written unusually: CRLF, spaces, JSON fields as strings, brackets inside strings, exponents."""
    choice = rng.randrange(5)
    if choice == 0:
        return _json(row) + b"\r"  # with the file's "\n": a CRLF line
    if choice == 1:
        return json.dumps(row, indent=None, separators=(" , ", " : "), ensure_ascii=True).encode()
    if choice == 2:
        return _json({**row, **{k: json.dumps(row[k]) for k in Turn.json_fields}})
    if choice == 3:
        return _json({**row, "asr_text": "[{" * 2_000, "trace": {"note": "]}" * 100 + "[[[" * 100}})
    return _json({**row, "nlu_slots": {"n": 1e15, "m": -0.0, "k": 12345678901234567}})


def write(folder: Path, *, valid: int, hostile: int, seed: int = 0, homes: list[Home] | None = None) -> HostileCorpus:
    """Write the corpus into ``folder``: ``valid`` clean turns and at least ``hostile`` hostile lines and rows."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    turns = logsample.generate(valid + hostile, seed=seed, homes=homes).turns
    rows = [json.loads(t.model_dump_json()) for t in turns]
    clean, templates = rows[:valid], rows[valid:]
    makers = _line_kinds()
    names = [name for name in sorted(makers) for _ in range(_RARE.get(name, 3))]
    kinds: Counter[str] = Counter()
    corpus = HostileCorpus(paths=[], valid_ids=set(), duplicates=0, lines=0, kinds=kinds)

    # JSONL: clean rows, odd-but-valid rows, duplicates and hostile lines, shuffled, with blank lines between.
    lines: list[bytes] = []
    n_jsonl = valid * 3 // 5
    for row in clean[:n_jsonl]:
        lines.append(_json(row))
        corpus.valid_ids.add(row["turn_id"])
    for i, row in enumerate(templates[: hostile // 10]):
        row = {**row, "turn_id": f"v{seed}-{i:06d}"}
        lines.append(_valid_odd(rng, row))
        corpus.valid_ids.add(row["turn_id"])
    for row in rng.sample(clean[:n_jsonl], min(n_jsonl, 50)):
        lines.append(_json(row))
        corpus.duplicates += 1
    n_bad = hostile - 2_000  # the rest are Parquet rows
    for i in range(n_bad):
        kind = names[i % len(names)]
        row = {**templates[i % len(templates)], "turn_id": f"x{seed}-{i:06d}-{rng.getrandbits(32):08x}"}
        lines.append(makers[kind](rng, row))
        kinds[kind] += 1
    rng.shuffle(lines)
    body = bytearray()
    for line in lines:
        body += line + b"\n" + (b"\n  \n" if rng.random() < 0.01 else b"")
    endless = b'{"turn_id":"x-endless","asr_text":"' + b"a" * (5 * 1024 * 1024)  # over the line limit, no newline
    kinds["endless_last_line"] += 1
    jsonl = folder / "turns_hostile.jsonl"
    jsonl.write_bytes(b"\xef\xbb\xbf" + bytes(body) + endless)
    corpus.paths.append(jsonl)
    corpus.lines += len(lines) + 1

    # Parquet, five row groups, one of them corrupt: only its rows may be quarantined.
    parquet_rows = clean[n_jsonl:]
    groups = folder / "turns_groups.parquet"
    table = to_arrow([Turn.model_validate(r) for r in parquet_rows], Turn)
    group_rows = -(-table.num_rows // 5)
    pq.write_table(table, groups, row_group_size=group_rows, compression="zstd")
    data = bytearray(groups.read_bytes())
    meta = pq.ParquetFile(groups).metadata
    column = meta.row_group(2).column(ARROW_SCHEMAS[Turn].get_field_index("asr_text"))
    start = column.data_page_offset
    data[start + 10 : start + 60] = bytes(50)  # inside the compressed page: the group's asr_text cannot be decoded
    groups.write_bytes(bytes(data))
    broken = set(table.column("turn_id").to_pylist()[2 * group_rows : 3 * group_rows])
    corpus.valid_ids |= set(table.column("turn_id").to_pylist()) - broken
    kinds["corrupt_row_group"] += len(broken)
    corpus.paths.append(groups)
    corpus.lines += table.num_rows

    # Parquet: hostile JSON cells and string booleans, in a file whose columns are all strings (checked row by row
    # where the types differ) and one in the schema's own types (the vectorised path).
    cells = [
        '{"a":' + _nest(5_000) + "}",
        '{"a":' + _nest(33) + "}",
        '{"a":1,"a":2}',
        '{"a":{"b":1,"b":2}}',
        '{"a":NaN}',
        '{"a":1e400}',
        '{"a":' + "9" * 30 + "}",
        '{"a":"' + "z" * 150_000 + '"}',
        '{"a" : 1 , "a" : 2}',
        '{"a":"\\":","a":"\\u0022:"}',
        '{"a":1,"b":',
    ]
    typed_rows: list[Row] = []
    for i in range(1_000):
        row = to_arrow([Turn.model_validate(templates[-1 - i])], Turn).to_pylist()[0]
        row["turn_id"] = f"xp{seed}-{i:06d}-{rng.getrandbits(32):08x}"
        row[rng.choice(Turn.json_fields)] = cells[i % len(cells)]
        typed_rows.append(row)
        kinds["parquet_json_cell"] += 1
    typed = folder / "turns_cells.parquet"
    pq.write_table(pa.Table.from_pylist(typed_rows, schema=ARROW_SCHEMAS[Turn]), typed)
    loose_rows = []
    for i, row in enumerate(typed_rows):
        loose = {k: (v if isinstance(v, str) or v is None else str(v)) for k, v in row.items()}
        loose["turn_id"] = str(row["turn_id"]).replace("xp", "xs")
        loose["barge_in"] = rng.choice(("yes", "true", "1", "False"))
        loose["ts"] = row["ts"].isoformat()
        if i % 10 == 0:
            loose["asr_text"] = "[" * 10_000
        loose_rows.append(loose)
        kinds["parquet_string_row"] += 1
    stringly = folder / "turns_strings.parquet"
    pq.write_table(pa.Table.from_pylist(loose_rows), stringly)
    corpus.paths += [typed, stringly]
    corpus.lines += len(typed_rows) + len(loose_rows)
    return corpus
