"""People's say over learned rules: disabled and pinned rewrite rules, in ``controls.json`` in the artifact root.

The file sits beside ``versions/``, not in a set, so a decision outlives every publish and rollback. A disabled rule
stops firing at once (the online rewriter checks the file's stamp on every lookup) and ``learn`` leaves it out of
every new set; a pinned rule is carried into every new set even when the logs no longer support it. A home's disable
of a global or pattern rule applies to that home only (``home_id``); an admin's applies everywhere, and only
rules disabled everywhere are left out of new sets. The file is only ever replaced whole (atomic rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import polars as pl

from selflearn.errors import SelflearnError
from selflearn.learners.mining import RewriteTables
from selflearn.runtime.rewrites import REWRITE_SCHEMA, STORED_SCHEMA, with_evidence

CONTROLS_FILE = "controls.json"
Action = Literal["disable", "pin"]
Kind = Literal["global", "pattern", "personal"]


def rule_id(kind: str, user_id: str | None, source: str, target: str) -> str:
    """A rule's stable handle across artifact versions: what it rewrites, into what, for whom, in which table."""
    key = "\x1f".join((kind, user_id or "", source, target))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Control:
    """One decision about one rule."""

    rule_id: str
    """The rule's id: ``rule_id(kind, user_id, source, target)``."""
    action: Action
    """With "disable" the rule never fires, left out of new sets; "pin": carried into every new set."""
    home_id: str | None
    """A disable that applies in this home only; None: everywhere."""
    rule: dict[str, Any]
    """The rule's row (``kind`` + ``STORED_SCHEMA`` columns), to list it and carry it when pinned."""
    by: str
    """The token id that decided (``tokens.TokenInfo.id``)."""
    ts: str
    """When, ISO 8601 UTC."""


def rule_frame(tables: RewriteTables) -> pl.DataFrame:
    """Every rule of an artifact set in one frame: ``kind``, ``rule_id`` and the ``STORED_SCHEMA`` columns (the
    evidence null where the set has none)."""
    parts = [
        with_evidence(table).with_columns(kind=pl.lit(kind))
        for kind, table in (
            ("global", tables.global_table),
            ("pattern", tables.pattern_table),
            ("personal", tables.personal_table),
        )
    ]
    frame = pl.concat(parts)
    ids = [rule_id(*row) for row in frame.select("kind", "user_id", "source", "target").iter_rows()]
    return frame.with_columns(rule_id=pl.Series(ids, dtype=pl.String()))


class Controls:
    """The ``controls.json`` of an artifact root, re-read whenever it changed (so every process sees a decision)."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / CONTROLS_FILE
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], list[Control]] | None = None

    def all(self) -> list[Control]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        cache = self._cache
        if cache is None or cache[0] != stamp:
            try:
                controls = [Control(**row) for row in json.loads(self.path.read_text(encoding="utf-8"))]
            except (ValueError, TypeError) as e:
                raise SelflearnError(f"rule controls {self.path} are damaged ({e}); fix or delete the file") from e
            cache = self._cache = (stamp, controls)
        return list(cache[1])

    def disabled(self, home_id: str | None) -> frozenset[str]:
        """Ids of the rules that must not fire in ``home_id`` (disabled everywhere or there)."""
        return frozenset(c.rule_id for c in self.all() if c.action == "disable" and c.home_id in (None, home_id))

    def set(self, control: Control) -> None:
        """Record a decision; it replaces any earlier one about the same rule in the same scope."""
        with self._lock:
            keep = [c for c in self.all() if (c.rule_id, c.home_id) != (control.rule_id, control.home_id)]
            self._save([*keep, control])

    def clear(self, rule: str, home_id: str | None) -> bool:
        """Undo the decision about ``rule`` in that scope (enable / unpin); False if there was none."""
        with self._lock:
            controls = self.all()
            keep = [c for c in controls if (c.rule_id, c.home_id) != (rule, home_id)]
            if len(keep) == len(controls):
                return False
            self._save(keep)
            return True

    def forget_user(self, user_id: str) -> int:
        """Drop the decisions about a user's personal rules (they hold the user's wordings)."""
        with self._lock:
            controls = self.all()
            keep = [c for c in controls if c.rule.get("user_id") != user_id]
            if len(keep) != len(controls):
                self._save(keep)
            return len(controls) - len(keep)

    def apply(self, tables: RewriteTables) -> RewriteTables:
        """The tables ``learn`` publishes: without the rules disabled everywhere, with every pinned rule."""
        controls = self.all()
        if not controls:
            return tables
        off = {c.rule_id for c in controls if c.action == "disable" and c.home_id is None}
        frame = rule_frame(tables)
        pinned = [c.rule for c in controls if c.action == "pin" and c.rule_id not in set(frame["rule_id"])]
        if pinned:
            extra = pl.DataFrame([{k: r.get(k) for k in [*STORED_SCHEMA, "kind"]} for r in pinned])
            extra = extra.cast(pl.Schema({**STORED_SCHEMA, "kind": pl.String()}))
            ids = [rule_id(*row) for row in extra.select("kind", "user_id", "source", "target").iter_rows()]
            frame = pl.concat([frame, extra.with_columns(rule_id=pl.Series(ids, dtype=pl.String()))])
        kept = frame.filter(~pl.col("rule_id").is_in(list(off)))

        def table(kind: str) -> pl.DataFrame:
            return kept.filter(pl.col("kind") == kind).select(list(REWRITE_SCHEMA))

        return RewriteTables(table("global"), table("personal"), table("pattern"))

    def _save(self, controls: list[Control]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".controls.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump([asdict(c) for c in controls], f, indent=1, default=str)
        os.replace(tmp, self.path)
        self._cache = None
