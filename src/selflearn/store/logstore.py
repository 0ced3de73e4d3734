"""The log store: turns, feedback and preferences in one DuckDB file; gold in a sibling file learners never see.

Learners get a ``LogView``: an in-memory DuckDB connection whose only tables are zero-copy views of ``turns`` and
``feedback`` snapshots (Arrow), with file access switched off and the configuration locked, so no query can attach
the gold file or read anything else. Gold is in ``<stem>.gold.duckdb``, opened only by ``Store.gold()`` (eval code)
and by writes.

Every write is one transaction per batch and idempotent by record id (INSERT OR IGNORE), so a crash mid-ingest
leaves the database valid and a re-run completes it: rows already stored count as duplicates. Reads and writes name
the schema's columns, and opening a store migrates its tables to the schema (new optional columns, NOT NULL dropped
where a field became optional), so old files keep working.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from selflearn import ids, paths
from selflearn.schema import ARROW_SCHEMAS, RECORD_TYPES, Feedback, Gold, Preference, Turn, canonical_json, to_arrow
from selflearn.store.connection import NoStore, StoreError, connect, count, locked, to_frame, where_clause
from selflearn.store.ingest import BATCH_ROWS, KINDS, Kind, discover, read_file
from selflearn.store.logview import LogView
from selflearn.store.quarantine import scrub_quarantine
from selflearn.store.tables import columns, migrate, table_ddl

MIN_PHRASE_CHARS = 8  # shorter texts ("yes", "stop") are everyone's: a forget does not look for them


def gold_path(db: Path) -> Path:
    return db.with_name(db.stem + ".gold.duckdb")


def quarantine_path(db: Path) -> Path:
    return db.with_name(db.stem + ".quarantine.jsonl")


@dataclass
class IngestReport:
    """What one ingest did. Always ``read == ingested + duplicates + quarantined``."""

    files: int
    """Files read."""
    read: int
    """Rows read."""
    ingested: int
    """Rows stored."""
    duplicates: int
    """Rows already in the store (same id), skipped."""
    quarantined: int
    """Rows rejected into the quarantine file."""
    quarantine_file: str
    """Where the rejected rows went ("" when none were)."""
    seconds: float
    """Wall-clock time of the ingest, in seconds."""
    by_kind: dict[str, int]
    """Record kind -> rows stored."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Store:
    """An embedded log store (DuckDB file; default under the user data dir, or $SELFLEARN_DB, or ``path``)."""

    def __init__(self, path: str | Path | None = None, *, create: bool = True):
        """``create=False`` for readers (learn, interpret, fpi): a mistyped path is an error ("no store at PATH"),
        not a new empty store whose 0 turns ``learn`` would then publish over what was learned."""
        self.path = Path(path) if path is not None else paths.default_db()
        if not create and not self.path.is_file():
            raise NoStore(f"no store at {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._main: duckdb.DuckDBPyConnection | None = connect(self.path)
        self._gold: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.RLock()
        main: tuple[Kind, ...] = ("turns", "feedback", "preferences")
        for kind in main:
            self._con.execute(table_ddl(kind))
            migrate(self._con, kind)

    # ------------------------------------------------------------------ connections

    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        if self._main is None:
            raise StoreError(f"log store {self.path} is closed")
        return self._main

    def _gold_con(self) -> duckdb.DuckDBPyConnection:
        if self._gold is None:
            self._gold = connect(gold_path(self.path))
            self._gold.execute(table_ddl("gold"))
            migrate(self._gold, "gold")
        return self._gold

    def _con_for(self, kind: Kind) -> duckdb.DuckDBPyConnection:
        return self._gold_con() if kind == "gold" else self._con

    @locked
    def close(self) -> None:
        """Close and drop both connections: a closed Store that something still references (FastAPI caches route
        endpoints, whose closures reach the service and its store) then holds no DuckDB object until exit."""
        if self._main is not None:
            self._main.close()
            self._main = None
        if self._gold is not None:
            self._gold.close()
            self._gold = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes

    def _insert(self, kind: Kind, table: pa.Table) -> int:
        """Insert rows not already stored (by key); return how many were new. Caller owns the transaction."""
        con = self._con_for(kind)
        con.register("_incoming", table)
        try:
            return count(con, f"INSERT OR IGNORE INTO {kind} ({columns(kind)}) SELECT {columns(kind)} FROM _incoming")
        finally:
            con.unregister("_incoming")

    def _write(self, tables: dict[Kind, pa.Table]) -> int:
        """Write one batch atomically per database file (main, gold); returns rows newly stored."""
        stored = 0
        for cons_kinds in (("turns", "feedback", "preferences"), ("gold",)):
            todo = [(k, t) for k, t in tables.items() if k in cons_kinds and t.num_rows]
            if not todo:
                continue
            con = self._con_for(todo[0][0])
            con.execute("BEGIN TRANSACTION")
            try:
                for kind, table in todo:
                    stored += self._insert(kind, table)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return stored

    @locked
    def add(self, *, turns: Iterable[Turn] = (), gold: Iterable[Gold] = (), feedback: Iterable[Feedback] = ()) -> None:
        """Store trusted in-process records (simulator, runtime); a record whose id is stored already is skipped."""
        tables: dict[Kind, pa.Table] = {}
        for kind, records, model in (("turns", turns, Turn), ("gold", gold, Gold), ("feedback", feedback, Feedback)):
            recs = list(records)
            if recs:
                tables[kind] = to_arrow(recs, model)  # type: ignore[index]
        self._write(tables)

    @locked
    def ingest(
        self,
        sources: str | Path | Iterable[str | Path],
        *,
        quarantine: Path | None = None,
        on_progress: Callable[[int], None] | None = None,
        batch_rows: int = BATCH_ROWS,
    ) -> IngestReport:
        """Validate and store JSONL/Parquet files or folders; bad rows go to the quarantine JSONL with a reason.

        Quarantine lines are flushed to disk before the batch's rows commit, so a crash never loses a rejected row
        (a re-run may write it again). ``on_progress`` gets the bytes of input processed per batch.
        """
        start = time.perf_counter()
        if isinstance(sources, str | Path):  # one path, not an iterable of its characters
            sources = [sources]
        qpath = quarantine if quarantine is not None else quarantine_path(self.path)
        files = [f for f in discover(sources) if f.resolve() != qpath.resolve()]  # never re-read our own output
        qpath.parent.mkdir(parents=True, exist_ok=True)
        read = ingested = quarantined = 0
        by_kind: dict[str, int] = dict.fromkeys(KINDS, 0)
        with open(qpath, "a", encoding="utf-8") as qfile:
            for path in files:
                for batch in read_file(path, batch_rows):
                    if batch.quarantined:
                        qfile.write("".join(q.to_json() + "\n" for q in batch.quarantined))
                        qfile.flush()
                        os.fsync(qfile.fileno())
                    for kind, table in batch.tables.items():
                        by_kind[kind] += table.num_rows
                    ingested += self._write(batch.tables)
                    read += batch.read
                    quarantined += len(batch.quarantined)
                    if on_progress is not None:
                        on_progress(batch.size_bytes)
        valid = sum(by_kind.values())
        return IngestReport(
            files=len(files),
            read=read,
            ingested=ingested,
            duplicates=valid - ingested,
            quarantined=quarantined,
            quarantine_file=str(qpath),
            seconds=round(time.perf_counter() - start, 3),
            by_kind=by_kind,
        )

    # ------------------------------------------------------------------ reads

    @locked
    def turn(self, turn_id: str) -> Turn | None:
        """One stored turn by id (the service checks whose turn it is before taking feedback on it)."""
        rows = (
            self._con.sql(f"SELECT {columns('turns')} FROM turns WHERE turn_id = ?", params=[turn_id])
            .to_arrow_table()
            .to_pylist()
        )
        return Turn.model_validate(rows[0]) if rows else None

    @locked
    def set_outcome(self, turn: Turn) -> bool:
        """Overwrite a stored turn's outcome (result_status, response_text, trace) with ``turn``'s: Home Assistant
        reports how carrying the turn out went only after it was logged. False when no such turn is stored."""
        query = "UPDATE turns SET result_status = ?, response_text = ?, trace = ? WHERE turn_id = ? AND home_id = ?"
        params = [turn.result_status, turn.response_text, canonical_json(turn.trace), turn.turn_id, turn.home_id]
        return count(self._con, query, params) == 1

    @locked
    def user_rows(self, user_id: str) -> dict[str, int]:
        """Turns, feedback and preferences stored for a user (a forget is verified with it)."""
        return {
            kind: count(self._con, f"SELECT count(*) FROM {kind} WHERE user_id = ?", [user_id])
            for kind in ("turns", "feedback", "preferences")
        }

    @locked
    def logs(self) -> LogView:
        """A snapshot of turns and feedback for learners; gold is not in it and cannot be reached from it."""
        turns = self._con.sql(f"SELECT {columns('turns')} FROM turns").to_arrow_table()
        feedback = self._con.sql(f"SELECT {columns('feedback')} FROM feedback").to_arrow_table()
        return LogView(turns, feedback)

    @locked
    def gold(self) -> pl.DataFrame:
        """Gold records (evaluation code only; learners must never call this)."""
        return to_frame(
            self._gold_con().sql(f"SELECT {columns('gold')} FROM gold ORDER BY turn_id").to_arrow_table(), "gold"
        )

    @locked
    def counts(self) -> dict[str, int]:
        """Rows stored per table (the ingest suite checks its report against these)."""
        out: dict[str, int] = {}
        for kind in KINDS:
            out[kind] = count(self._con_for(kind), f"SELECT count(*) FROM {kind}")
        return out

    # ------------------------------------------------------------------ preferences

    @locked
    def preferences(self, user_id: str) -> list[Preference]:
        rows = self._con.sql(
            f"SELECT {columns('preferences')} FROM preferences WHERE user_id = ? ORDER BY ts, kind, key",
            params=[user_id],
        ).to_arrow_table()
        return [Preference.model_validate(r) for r in rows.to_pylist()]

    @locked
    def put_preference(self, pref: Preference) -> None:
        """Insert or replace the user's preference with the same (kind, key, scope)."""
        self._con.register("_incoming", to_arrow([pref], Preference))
        try:
            cols = columns("preferences")
            self._con.execute(f"INSERT OR REPLACE INTO preferences ({cols}) SELECT {cols} FROM _incoming")
        finally:
            self._con.unregister("_incoming")

    @locked
    def delete_preferences(self, user_id: str, *, kind: str | None = None, key: str | None = None) -> int:
        clause, params = where_clause([("user_id = ?", user_id), ("kind = ?", kind), ("key = ?", key)])
        return count(self._con, f"DELETE FROM preferences{clause}", params)

    # ------------------------------------------------------------------ privacy

    @locked
    def phrases(self, user_id: str, *, min_chars: int = MIN_PHRASE_CHARS) -> set[str]:
        """What the user said or taught (heard and true texts, feedback, preference keys and values: not the
        assistant's rewrites and answers, which are rules' and everyone's words), of at least
        ``min_chars`` characters and two words: shorter ones ("yes", "stop") cannot be told apart from anyone's."""
        ids.check(user_id, "user")
        said = self._con.execute(
            """SELECT asr_text FROM turns WHERE user_id = $u
               UNION SELECT text FROM feedback WHERE user_id = $u
               UNION SELECT correction_text FROM feedback WHERE user_id = $u
               UNION SELECT key FROM preferences WHERE user_id = $u
               UNION SELECT value FROM preferences WHERE user_id = $u""",
            {"u": user_id},
        ).fetchall()
        gold = self._gold_con()
        gold.register(
            "_ids", self._con.sql("SELECT turn_id FROM turns WHERE user_id = ?", params=[user_id]).to_arrow_table()
        )
        try:
            truth = gold.execute("SELECT true_text FROM gold WHERE turn_id IN (SELECT turn_id FROM _ids)").fetchall()
        finally:
            gold.unregister("_ids")
        texts = {str(r[0]).strip() for r in [*said, *truth] if r[0] is not None}
        return {t for t in texts if len(t) >= min_chars and len(t.split()) >= 2}

    @locked
    def shared(self, phrases: Iterable[str], *, besides: str | None = None) -> set[str]:
        """The phrases some stored row (not of user ``besides``) holds anywhere in its text: another user's words.

        One RE2 pass over every row's text finds the rows holding any of them; only those are matched phrase by
        phrase."""
        todo = sorted(set(phrases))
        if not todo:
            return set()
        any_of = "|".join(_re2_literal(p) for p in todo)
        theirs = self._con.sql("SELECT turn_id FROM turns WHERE user_id = ?", params=[besides or ""]).to_arrow_table()
        found: set[str] = set()
        where: tuple[tuple[duckdb.DuckDBPyConnection, tuple[Kind, ...]], ...] = (
            (self._con, ("turns", "feedback", "preferences")),
            (self._gold_con(), ("gold",)),
        )
        for con, kinds in where:
            con.register("_phrases", pa.table({"phrase": todo}))
            con.register("_theirs", theirs)
            try:
                for kind in kinds:
                    own = "turn_id IN (SELECT turn_id FROM _theirs)" if kind == "gold" else "user_id = ?"
                    rows = con.execute(
                        f"WITH r AS (SELECT {_text_of(kind)} AS row FROM {kind} WHERE NOT ({own})), "
                        "hit AS (SELECT row FROM r WHERE regexp_matches(row, ?)) "
                        "SELECT DISTINCT p.phrase FROM _phrases p, hit WHERE contains(hit.row, p.phrase)",
                        [*([] if kind == "gold" else [besides or ""]), any_of],
                    ).fetchall()
                    found.update(r[0] for r in rows)
            finally:
                con.unregister("_phrases")
                con.unregister("_theirs")
        return found

    @locked
    def forget(
        self, user_id: str, *, quarantine: Path | None = None, phrases: Iterable[str] | None = None
    ) -> dict[str, int]:
        """Delete everything stored about exactly this user: turns, their gold, feedback (theirs or on their turns),
        preferences, and quarantined lines that name them or, naming nobody, hold one of ``phrases`` (default: their
        phrases no other row holds) in the default quarantine file and ``quarantine``. An invalid id is refused
        before anything is deleted.

        Gold goes first, so an interrupted forget leaves the turns that let a re-run find the rest. Then both
        database files are rewritten from their live rows (``compact``): DuckDB leaves deleted values in freed
        blocks, CHECKPOINT and VACUUM included, so the user's words would stay readable in the file's bytes.
        """
        ids.check(user_id, "user")
        if phrases is None:
            mine = self.phrases(user_id)
            phrases = mine - self.shared(mine, besides=user_id)
        ids_table = self._con.sql("SELECT turn_id FROM turns WHERE user_id = ?", params=[user_id]).to_arrow_table()
        gold = self._gold_con()
        gold.register("_ids", ids_table)
        try:
            counts = {"gold": count(gold, "DELETE FROM gold WHERE turn_id IN (SELECT turn_id FROM _ids)")}
        finally:
            gold.unregister("_ids")
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            counts["feedback"] = count(
                con,
                "DELETE FROM feedback WHERE user_id = ? OR turn_id IN (SELECT turn_id FROM turns WHERE user_id = ?)",
                [user_id, user_id],
            )
            counts["turns"] = count(con, "DELETE FROM turns WHERE user_id = ?", [user_id])
            counts["preferences"] = count(con, "DELETE FROM preferences WHERE user_id = ?", [user_id])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self.compact()
        files = {quarantine_path(self.path), *([quarantine] if quarantine is not None else [])}
        counts["quarantine"] = sum(scrub_quarantine(f, user_id, set(phrases)) for f in files)
        return counts

    @locked
    def compact(self) -> None:
        """Rewrite the main and the gold database file from their live rows (``COPY FROM DATABASE`` into a fresh
        file, then an atomic rename), so no deleted value is left in the files' bytes."""
        self._gold_con()
        for path, attr in ((self.path, "_main"), (gold_path(self.path), "_gold")):
            con: duckdb.DuckDBPyConnection = getattr(self, attr)
            con.execute("CHECKPOINT")
            con.close()
            fresh = path.with_name(path.name + ".compact")
            fresh.unlink(missing_ok=True)
            try:
                copier = duckdb.connect(":memory:")
                try:
                    copier.execute("ATTACH ? AS src (READ_ONLY)", [str(path)])
                    copier.execute("ATTACH ? AS dst", [str(fresh)])
                    copier.execute("COPY FROM DATABASE src TO dst")
                    copier.execute("CHECKPOINT dst")
                finally:
                    copier.close()
                with open(fresh, "rb") as f:
                    os.fsync(f.fileno())
                os.replace(fresh, path)
                paths.fsync_dir(path.parent)
            finally:
                setattr(self, attr, connect(path))


def _text_of(kind: Kind) -> str:
    """SQL for all of a row's text columns in one string (a unit separator between them, so no phrase spans two)."""
    names = [f'"{f.name}"' for f in ARROW_SCHEMAS[RECORD_TYPES[kind]] if f.type == pa.string()]
    return f"concat_ws(chr(31), {', '.join(names)})"


def _re2_literal(text: str) -> str:
    """``text`` as an RE2 pattern matching itself (ASCII punctuation and control characters escaped)."""
    return "".join(
        f"\\x{{{ord(c):x}}}" if not c.isprintable() else "\\" + c if c.isascii() and not c.isalnum() and c != " " else c
        for c in text
    )
