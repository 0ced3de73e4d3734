"""Suite ``ingest``: a seeded log with every kind of corruption injected goes through ``Store.ingest``.

The claim measured: no row is lost. ``rows_lost`` is recomputed from what is actually on disk (rows in the
database, lines in the quarantine file), not from the ingest's own report; ``corruptions_caught`` is the share of
injected corrupt rows that ended up in quarantine and ``valid_rows_rejected`` counts clean rows quarantined by mistake.

Then the hostile corpus (``selflearn.sim.hostile``: deep nesting, huge lines and numbers, NaN, duplicate keys, string
booleans, invalid UTF-8, fuzzed rows, a corrupt Parquet row group) is ingested file by file: ``hostile_tracebacks``
counts files whose ingest raised, ``hostile_valid_rows_lost`` known-valid rows not in the store,
``hostile_accounting_error`` lines written minus (rows stored + duplicates + quarantine lines) counted on disk, and
``hostile_unreadable_rows`` stored rows that ``Store.turn``, the learners' ``LogView`` or the JSON columns' readers
fail on.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from selflearn.eval import harness as evaluate
from selflearn.home import Home, load_home
from selflearn.learners.labels.trace import flatten_trace
from selflearn.schema import Turn, to_arrow
from selflearn.sim import hostile, logsample
from selflearn.store.logstore import Store


@evaluate.suite("ingest")
def run(config: evaluate.EvalConfig) -> evaluate.EvalResult:
    n = 4_000 if config.quick else 100_000
    homes = [load_home(config.home)] if config.home else None
    log = logsample.generate(n, seed=config.seed, homes=homes)
    with tempfile.TemporaryDirectory(dir=config.work_dir) as tmp:
        root = Path(tmp)
        paths, jsonl_bad, parquet_bad = logsample.write_corrupted(log, root / "in", rate=0.02, seed=config.seed)
        qfile = root / "quarantine.jsonl"
        with Store(root / "logs.duckdb") as store:
            start = time.perf_counter()
            report = store.ingest(list(paths.values()), quarantine=qfile)
            seconds = time.perf_counter() - start
            stored = sum(store.counts().values())
            store.ingest(list(paths.values()), quarantine=root / "again.jsonl")
            stored_again = sum(store.counts().values())
        quarantine_lines = [json.loads(line) for line in qfile.read_text(encoding="utf-8").splitlines()]
        corrupted = _corrupted_positions(log, paths)
    injected = sum(v for counts in (jsonl_bad, parquet_bad) for k, v in counts.items() if k != "duplicate")
    injected_dups = jsonl_bad["duplicate"] + parquet_bad["duplicate"]
    quarantined = {(q["source"], q["line"]) for q in quarantine_lines}
    metrics = {
        "rows_read": report.read,
        "rows_ingested": report.ingested,
        "rows_duplicates": report.duplicates,
        "rows_quarantined": report.quarantined,
        "rows_lost": report.read - stored - report.duplicates - len(quarantine_lines),
        "corruptions_injected": injected,
        "duplicates_injected": injected_dups,
        "corruptions_caught": len(quarantined & corrupted) / len(corrupted),
        "valid_rows_rejected": len(quarantined - corrupted),
        "reingest_new_rows": stored_again - stored,
        "ingest_rows_per_s": report.read / seconds,
    }
    with tempfile.TemporaryDirectory(dir=config.work_dir) as tmp:
        metrics.update(run_hostile(Path(tmp), valid=n // 10, seed=config.seed, homes=homes))
    return evaluate.EvalResult(n=report.read, metrics=metrics)


def run_hostile(root: Path, *, valid: int, seed: int, homes: list[Home] | None = None) -> dict[str, float]:
    """Ingest the hostile corpus file by file and check the outcome on disk (see the module docstring)."""
    corpus = hostile.write(root / "in", valid=valid, hostile=10_000, seed=seed, homes=homes)
    qfile = root / "quarantine.jsonl"
    tracebacks = read = 0
    with Store(root / "logs.duckdb") as store:
        for path in corpus.paths:
            try:
                read += store.ingest([path], quarantine=qfile).read
            except Exception:  # the measurement: a file whose ingest stopped
                tracebacks += 1
        stored = store.logs().turns()
        unreadable = sum(not _reads_back(store, row) for row in stored.iter_rows(named=True))
    with open(qfile, encoding="utf-8") as f:
        quarantined = sum(1 for _ in f)
    ids = set(stored["turn_id"].to_list())
    return {
        "hostile_lines_written": corpus.lines,
        "hostile_kinds": len(corpus.kinds),
        "hostile_rows_read": read,
        "hostile_rows_stored": len(ids),
        "hostile_rows_quarantined": quarantined,
        "hostile_tracebacks": tracebacks,
        "hostile_valid_rows": len(corpus.valid_ids),
        "hostile_valid_rows_lost": len(corpus.valid_ids - ids),
        "hostile_accounting_error": corpus.lines - len(ids) - corpus.duplicates - quarantined,
        "hostile_unreadable_rows": unreadable,
    }


def _reads_back(store: Store, row: dict[str, object]) -> bool:
    """A stored row as its readers see it: ``Store.turn``, JSON columns with plain ``json``, the trace features."""
    try:
        turn = store.turn(str(row["turn_id"]))
        for name in Turn.json_fields:
            json.loads(str(row[name]))
        flatten_trace(str(row["trace"]))
    except Exception:  # the measurement: any reader failing on a stored row
        return False
    return turn is not None


def _corrupted_positions(log: logsample.SampleLog, paths: dict[str, Path]) -> set[tuple[str, int]]:
    """(file, 1-based line/row) of every row the injector changed, found by comparing with the clean records."""
    half = len(log.turns) // 2
    jsonl = paths["turns_jsonl"]
    clean_lines = [t.model_dump_json().encode() for t in log.turns[:half]]
    written = jsonl.read_bytes().split(b"\n")
    out = {(str(jsonl), i + 1) for i, line in enumerate(written[:half]) if line != clean_lines[i]}
    parquet = paths["turns_parquet"]
    clean_rows = to_arrow(log.turns[half:], Turn).to_pylist()
    rows = pq.read_table(parquet).to_pylist()
    out |= {(str(parquet), i + 1) for i, row in enumerate(rows[: len(clean_rows)]) if row != clean_rows[i]}
    return out
