"""Forgetting a user everywhere, and proving it: the one procedure behind ``selflearn forget`` and
``DELETE /v1/users/{id}``.

The store deletes the user's rows and rewrites its database files; the artifact store deletes ``personal/<id>/`` from
every set and unfinished build; pending feedback rewrites go. Then every file under the data dir, the artifact root
and the feedback root, and the store's own files (database, gold, write-ahead logs, quarantine) wherever they are, is
read for the user's id (that exact id, not a longer id it starts) and for the phrases only they said: raw bytes, JSON
lines decoded, Parquet string columns read. ``verified`` means that scan found nothing.
"""

from __future__ import annotations

import json
import mmap
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from selflearn import ids, paths
from selflearn.artifacts import ArtifactStore
from selflearn.controls import Controls
from selflearn.runtime.feedback import PendingRewrites
from selflearn.store.logstore import Store, gold_path, quarantine_path


@dataclass
class Forgotten:
    """What one forget deleted and what the scan afterwards found."""

    user_id: str
    """The user forgotten."""
    deleted: dict[str, int]
    """Rows, quarantine lines, personal folders and pending rewrites removed, by kind."""
    phrases: int
    """The user's own phrases looked for (said by nobody else, two words and 8 characters or more)."""
    files_scanned: int
    """Files read by the scan."""
    left: list[str] = field(default_factory=list)
    """Files that still hold the id or one of the phrases."""
    verified: bool = False
    """The scan found nothing and the store has no row of the user."""


def forget_user(
    user_id: str,
    *,
    store: Store,
    artifacts: ArtifactStore,
    pending: PendingRewrites,
    quarantine: Path | None = None,
) -> Forgotten:
    """Delete the user from the store, every artifact set and the pending feedback rewrites, then scan every file.

    An invalid id is refused (``ids.InvalidId``) before anything is read or deleted.
    """
    ids.check(user_id, "user")
    mine = store.phrases(user_id)
    phrases = mine - store.shared(mine, besides=user_id)
    deleted = store.forget(user_id, quarantine=quarantine, phrases=phrases)
    deleted["personal_artifacts"] = artifacts.forget_user(user_id)
    deleted["pending_rewrites"] = pending.forget(user_id)
    deleted["rule_controls"] = Controls(artifacts.root).forget_user(user_id)
    roots = [paths.data_dir(), artifacts.root, *([pending.root] if pending.root else [])]
    own = [store.path, gold_path(store.path), quarantine_path(store.path), *([quarantine] if quarantine else [])]
    extra = [*own, *(p.with_name(p.name + ".wal") for p in own[:2])]
    files = sorted(set(_files(roots, extra)))
    left = [str(f) for f in files if _holds(f, user_id, phrases)]
    if store.shared(phrases) or sum(store.user_rows(user_id).values()):
        left.append(str(store.path))
    return Forgotten(user_id, deleted, len(phrases), len(files), sorted(set(left)), verified=not left)


def _files(roots: Iterable[Path], extra: Iterable[Path]) -> Iterator[Path]:
    """Every regular file under the roots (symlinks not followed) and the extra files that exist."""
    seen: set[Path] = set()
    for root in roots:
        root = root.resolve()
        if root in seen or not root.is_dir():
            continue
        seen.add(root)
        yield from (p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    yield from (p.resolve() for p in extra if p.is_file())


def _holds(path: Path, user_id: str, phrases: set[str]) -> bool:
    """Whether the file names the user or holds one of their phrases: raw bytes, decoded JSON lines, Parquet.

    Database and Parquet files store strings back to back, so their raw bytes can spell a phrase across two other
    texts ("...office light" + "set the ..."): there only the id is looked for in the bytes, and phrases in the
    decoded values (Parquet) or by query over the rows the store's files were just rewritten from (``shared``).
    """
    mention = ids.mention(user_id)
    packed = path.suffix in (".duckdb", ".wal", ".parquet", ".compact")
    needles = re.compile(b"|".join(re.escape(p.encode()) for p in sorted(phrases))) if phrases and not packed else None
    with open(path, "rb") as f:
        if path.stat().st_size == 0:
            return False
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if mention.search(data) or (needles is not None and needles.search(data)):
                return True
            if path.suffix in (".jsonl", ".json"):
                texts: Iterable[str] = _json_strings(bytes(data))
            elif path.suffix == ".parquet":
                texts = _parquet_strings(path)
            else:
                return False
            return any(t == user_id or mention.search(t.encode()) or any(p in t for p in phrases) for t in texts)


def _parquet_strings(path: Path) -> Iterator[str]:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError):
        return
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            yield from (v for v in column.to_pylist() if v is not None)


def _json_strings(data: bytes) -> Iterator[str]:
    """Every string in a JSON or JSON-lines file, escapes decoded; strings that are JSON themselves (a quarantined
    line's ``raw``) are opened too."""
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            yield from _strings(json.loads(line))
        except ValueError:
            yield line


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
        if value.lstrip().startswith(("{", "[")):
            try:
                inner = json.loads(value)
            except ValueError:
                return
            yield from _strings(inner)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
