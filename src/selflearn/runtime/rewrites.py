"""Rewriting utterances before NLU: the offline miner writes rewrite tables, the online rewriter reads them.

The table format is the contract between the two (artifact files ``rewrites/global.parquet`` and
``personal/<user_id>/rewrites.parquet``). Sources and targets are ``selflearn.text.normalize`` forms.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import polars as pl

from selflearn import ids

if TYPE_CHECKING:
    from selflearn.home import Endpoint, Home

GLOBAL_TABLE = Path("rewrites") / "global.parquet"
PATTERN_TABLE = Path("rewrites") / "patterns.parquet"  # global rules over delexicalised forms (rewrite/patterns.py)
PERSONAL_DIR = Path("personal")
PERSONAL_TABLE_NAME = "rewrites.parquet"


@dataclass(frozen=True)
class Rewrite:
    """What a rewriter sends to NLU instead of the utterance (the runtime's rewrite stage, feedback and teaching
    all produce one, so it lives here and not in the runtime that consumes it)."""

    text: str
    """The text sent to NLU instead."""
    source: str
    """Which rewriter made it: "global", "personal", "feedback" or "teach"."""
    score: float
    """The rewriter's confidence in it (0..1)."""


class Rewriter(Protocol):
    def rewrite(self, text: str, *, user_id: str, home: Home, endpoint: Endpoint, now: datetime) -> Rewrite | None: ...


@runtime_checkable
class Retriever(Protocol):
    """The fallback for a request the NLU failed on or barely understood: a working utterance, or None (abstain)."""

    def retrieve(self, text: str, *, user_id: str, home: Home, endpoint: Endpoint, now: datetime) -> Rewrite | None: ...


REWRITE_SCHEMA = pl.Schema(
    {
        "source": pl.String(),  # normalised utterance form that tends to fail
        "target": pl.String(),  # normalised form to send to NLU instead
        "probability": pl.Float64(),  # P(absorbed in target | started in source), absorbing Markov chain
        "support": pl.Int64(),  # rephrase chains from source that ended in target
        "distinct_users": pl.Int64(),  # users behind those chains (k-anonymity for the global layer)
        "source_intent": pl.String(),  # most frequent NLU intent of the source form (null: no match)
        "target_intent": pl.String(),  # most frequent NLU intent of the target when it succeeded
        "layer": pl.String(),  # "global" | "personal"
        "user_id": pl.String(),  # null for the global layer
    }
)


# Optional per-rule evidence ``learn`` adds when it publishes (``learners/evidence.py``): absent from sets written
# before it (``with_evidence``: nulls), null where it is not known (no shadow replay; a rule mined only with the
# held-out day). Read back as written: the tables keep whichever of these columns they were saved with.
EVIDENCE_SCHEMA = pl.Schema(
    {
        "distinct_homes": pl.Int64(),  # homes behind the rule's chains (the mining guard counts them too)
        "shadow_fixes": pl.Int64(),  # held-out turns this rule fixed in the shadow replay (``learn``)
        "shadow_breaks": pl.Int64(),  # held-out turns this rule broke there
    }
)
STORED_SCHEMA = pl.Schema({**REWRITE_SCHEMA, **EVIDENCE_SCHEMA})


def empty_table() -> pl.DataFrame:
    return pl.DataFrame(schema=REWRITE_SCHEMA)


def with_evidence(table: pl.DataFrame) -> pl.DataFrame:
    """``table`` with the ``STORED_SCHEMA`` columns, the evidence it lacks as nulls."""
    missing = [pl.lit(None, dtype=d).alias(c) for c, d in EVIDENCE_SCHEMA.items() if c not in table.columns]
    return table.with_columns(missing).select(list(STORED_SCHEMA)).cast(STORED_SCHEMA)


def _stored(table: pl.DataFrame) -> pl.DataFrame:
    columns = [c for c in STORED_SCHEMA if c in REWRITE_SCHEMA or c in table.columns]
    return table.select(columns).cast({c: STORED_SCHEMA[c] for c in columns})


def personal_path(root: Path, user_id: str) -> Path:
    """Per-user data lives under ``personal/<user_id>/`` so ``ArtifactStore.forget_user`` can delete it; the id is
    checked (``ids.child_path``), so a logged id can never place the file elsewhere."""
    return ids.child_path(root / PERSONAL_DIR, user_id) / PERSONAL_TABLE_NAME


def write_tables(
    root: Path, global_table: pl.DataFrame, personal: pl.DataFrame, patterns: pl.DataFrame | None = None
) -> list[Path]:
    """Write the global (and pattern) table and one file per user of the personal table (``REWRITE_SCHEMA``, and
    the ``EVIDENCE_SCHEMA`` columns the tables have)."""
    written = []
    for relative, table in ((GLOBAL_TABLE, global_table), (PATTERN_TABLE, patterns)):
        if table is None:
            continue
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        _stored(table).write_parquet(path)
        written.append(path)
    for (user_id,), rows in personal.partition_by("user_id", as_dict=True).items():
        path = personal_path(root, str(user_id))
        path.parent.mkdir(parents=True, exist_ok=True)
        _stored(rows).write_parquet(path)
        written.append(path)
    return written


def read_global(root: Path) -> pl.DataFrame:
    path = root / GLOBAL_TABLE
    return pl.read_parquet(path).cast(REWRITE_SCHEMA) if path.exists() else empty_table()


def read_patterns(root: Path) -> pl.DataFrame:
    path = root / PATTERN_TABLE
    return pl.read_parquet(path).cast(REWRITE_SCHEMA) if path.exists() else empty_table()


def read_personal(root: Path, user_id: str) -> pl.DataFrame:
    """The user's table; empty for an id no folder can be named by (e.g. replaying logs stored before the id rule)."""
    if not ids.is_valid(user_id):
        return empty_table()
    path = personal_path(root, user_id)
    return pl.read_parquet(path).cast(REWRITE_SCHEMA) if path.exists() else empty_table()
