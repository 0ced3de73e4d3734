"""On-disk cache of each home's day-0 retrieval index: its canonical commands as dry-run entries, with their vectors.

Building that part of a home's index (``rewrite/retrieval.py``: the NLU's templates rendered with the home's names,
each run through a throwaway runtime, then encoded) takes 10-20 s per home, almost all of it hassil matching. It
depends only on the home's configuration, the encoder and the code that renders and runs the commands, so it is
kept under ``<data dir>/cache/retrieval/<home id>/<key>.npz``, keyed by a hash of all three: a service or CLI
restart and the simulator's many runtimes read it instead. A file is written to a temporary name and renamed (a
reader never sees half of one); it holds a SHA-256 digest of its content, and a file that does not read back whole
and valid (truncated, flipped bits, wrong shape, another key) is rebuilt and replaced, never used. Home ids become
folder names only through ``ids.child_path``. Only the home's own commands are cached: what worked in the logs
changes with each artifact set and is not.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from selflearn import ids, paths
from selflearn.home import Home

FORMAT = 1  # bump when the file layout changes
Vectors = npt.NDArray[np.float32]
T = TypeVar("T")


@dataclass(frozen=True)
class Day0:
    """The cached part of a home's index."""

    rows: list[dict[str, Any]]
    """One JSON object per entry (``runtime.known_commands.Entry``'s fields)."""
    vectors: Vectors
    """The entries' encodings, one row each."""
    texts: list[str]
    """Every rendered command the entries were chosen from (kept or not)."""


def default_root() -> Path:
    """``<data dir>/cache/retrieval`` (follows ``SELFLEARN_HOME``)."""
    return paths.data_dir() / "cache" / "retrieval"


@lru_cache(maxsize=1)
def code_version() -> str:
    """A digest of the code and templates an index is built with: every Python module and template file of the
    package, and the versions of hassil and home-assistant-intents. Any change to them invalidates every cached
    index (conservative: an edit elsewhere costs one rebuild, never a stale index)."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256(f"{version('hassil')} {version('home-assistant-intents')}".encode())
    files = [*package.rglob("*.py"), *(package / "data" / "templates").rglob("*")]
    for path in sorted(p for p in files if p.is_file()):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class CacheStats:
    """What the cache did in this process (tests and progress)."""

    memory: int = 0
    """Served from memory."""
    disk: int = 0
    """Read back from a valid file."""
    built: int = 0
    """Built (no file, or an invalid one)."""
    rejected: int = 0
    """Files that did not read back valid (rebuilt and replaced)."""


class IndexCache:
    """Day-0 index parts by home, in memory and on disk under ``root``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else default_root()
        self.stats = CacheStats()
        self._memory: dict[str, Day0] = {}
        self._remembered: dict[tuple[str, ...], Any] = {}

    def key(self, home: Home, encoder: str, settings: Mapping[str, Any]) -> str:
        """The cache key: the home's configuration, the encoder's name, the build ``settings`` and the code."""
        parts = {"format": FORMAT, "home": home.model_dump(mode="json"), "encoder": encoder, "settings": settings}
        text = json.dumps(parts, sort_keys=True) + code_version()
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def path(self, home: Home, key: str) -> Path:
        """Where the home's index for ``key`` lives (the home id checked by ``ids.child_path``)."""
        return ids.child_path(self.root, home.id) / f"{key}.npz"

    def get(self, home: Home, key: str, build: Callable[[], Day0]) -> Day0:
        """The home's day-0 part for ``key``: from memory, else a valid file, else ``build()`` (then saved)."""
        found = self._memory.get(key)
        if found is not None:
            self.stats.memory += 1
            return found
        try:
            path: Path | None = self.path(home, key)
        except ids.InvalidId:
            path = None  # a home id no folder can be named by: built, kept in memory only
        found = self.read(path, key) if path is not None and path.exists() else None
        if found is not None:
            self.stats.disk += 1
        else:
            self.stats.rejected += path is not None and path.exists()
            self.stats.built += 1
            found = build()
            if path is not None:
                self.write(path, key, found)
        self._memory[key] = found
        return found

    def remember(self, key: tuple[str, ...], compute: Callable[[], T]) -> T:
        """``compute()`` once per ``key`` in this process (a logged pair's dry run, kept between artifact sets)."""
        if key not in self._remembered:
            self._remembered[key] = compute()
        found: T = self._remembered[key]
        return found

    def read(self, path: Path, key: str) -> Day0 | None:
        """A cached file's content, or None unless it reads back whole: its digest, key and shapes agree."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta, body, vectors = bytes(data["meta"]), bytes(data["body"]), np.array(data["vectors"])
            info, content = json.loads(meta), json.loads(body)
            rows, texts = content["rows"], content["texts"]
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, UnicodeDecodeError):
            return None
        ok = (
            isinstance(info, dict)
            and info.get("key") == key
            and info.get("digest") == _digest(body, vectors)
            and isinstance(rows, list)
            and all(isinstance(r, dict) for r in rows)
            and isinstance(texts, list)
            and all(isinstance(t, str) for t in texts)
            and vectors.dtype == np.float32
            and vectors.ndim == 2
            and vectors.shape[0] == len(rows)
        )
        return Day0(rows, vectors, texts) if ok else None

    def write(self, path: Path, key: str, day0: Day0) -> Path:
        """Save atomically (temporary file, fsync, rename) and drop the home's files of other keys (a changed home,
        encoder or code leaves nothing stale behind)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"rows": day0.rows, "texts": day0.texts}, sort_keys=True).encode()
        vectors = np.ascontiguousarray(day0.vectors, dtype=np.float32)
        meta = json.dumps({"key": key, "digest": _digest(body, vectors)}).encode()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(
                    handle,
                    meta=np.frombuffer(meta, dtype=np.uint8),
                    body=np.frombuffer(body, dtype=np.uint8),
                    vectors=vectors,
                )
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for stale in path.parent.glob("*.npz"):
            if stale != path:
                stale.unlink(missing_ok=True)
        return path


def _digest(body: bytes, vectors: Vectors) -> str:
    return hashlib.sha256(body + vectors.tobytes()).hexdigest()


_SHARED: dict[Path, IndexCache] = {}


def shared_cache(root: Path | None = None) -> IndexCache:
    """One cache per root and process (``root`` defaults to ``default_root()``, read at each call)."""
    root = root if root is not None else default_root()
    found = _SHARED.get(root)
    if found is None:
        found = _SHARED[root] = IndexCache(root)
    return found
