"""Versioned artifact sets: what the learners publish and the runtime loads, swapped atomically, rolled back on demand.

Layout under the root::

    versions/<version>/...      one complete artifact set (plus meta.json), never changed after publishing
    current                     a one-line file naming the version in service, replaced atomically (os.replace)
    tmp/<pid>-<uuid>/           sets being built; renamed into versions/ only once complete

A build that raises, or a process killed mid-publish, leaves a stray temp dir at worst: ``current`` still names the
previous complete set. Per-user data lives only in the folder ``personal/<user_id>/`` of a set (built with
``ids.child_path``), so ``forget_user`` deletes exactly that folder: never another id that starts the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from selflearn import ids, paths
from selflearn.errors import UsageError

META = "meta.json"


class ArtifactError(UsageError, RuntimeError):
    """An artifact operation that cannot proceed (unknown version, nothing to roll back to)."""


@dataclass(frozen=True)
class Version:
    version: str
    """Version name (its folder under artifacts/), sortable by creation time."""
    created: str
    """When it was published, ISO 8601 UTC."""
    meta: dict[str, Any]
    """What the learners recorded with it (counts, shadow report, config)."""
    current: bool
    """This is the version the runtime loads now."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ArtifactStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else paths.default_artifacts()
        self.versions_dir = self.root / "versions"
        self.tmp_dir = self.root / "tmp"
        self.pointer = self.root / "current"
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def _names(self) -> list[str]:
        return sorted(p.name for p in self.versions_dir.iterdir() if p.is_dir() and (p / META).exists())

    def current(self) -> str | None:
        try:
            name = self.pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        if not ids.is_valid(name):  # a pointer naming no version (or a path) means nothing is in service
            return None
        return name if (ids.child_path(self.versions_dir, name) / META).exists() else None

    def current_dir(self) -> Path | None:
        """The folder of the artifact set in service, or None before the first publish."""
        name = self.current()
        return ids.child_path(self.versions_dir, name) if name else None

    def versions(self) -> list[Version]:
        cur = self.current()
        out = []
        for name in self._names():
            meta = json.loads((ids.child_path(self.versions_dir, name) / META).read_text(encoding="utf-8"))
            out.append(Version(name, meta.get("created", ""), meta.get("meta", {}), name == cur))
        return out

    def _set_current(self, name: str) -> None:
        tmp = self.root / f".current.{os.getpid()}.{uuid.uuid4().hex}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.pointer)
        paths.fsync_dir(self.root)

    def _clean_stale(self) -> None:
        """Remove temp dirs left by publishers that died (their pid is no longer running)."""
        for entry in self.tmp_dir.iterdir():
            pid = entry.name.split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)

    def publish(self, build: Callable[[Path], None], *, meta: dict[str, Any]) -> str:
        """Build a new set in a temp dir, move it into ``versions/`` and switch ``current`` to it; returns the version.

        If ``build`` raises, nothing changes (the temp dir is removed, ``current`` keeps its value).
        """
        self._clean_stale()
        work = self.tmp_dir / f"{os.getpid()}-{uuid.uuid4().hex}"
        work.mkdir()
        try:
            build(work)
            created = datetime.now(UTC)
            (work / META).write_text(
                json.dumps({"created": created.isoformat(), "meta": meta}, sort_keys=True, default=str),
                encoding="utf-8",
            )
            for path in work.rglob("*"):
                if path.is_file():
                    with open(path, "rb") as f:
                        os.fsync(f.fileno())
            name = self._move_in(work, created)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        self._set_current(name)
        return name

    def _move_in(self, work: Path, created: datetime) -> str:
        stamp = created.strftime("%Y%m%dT%H%M%S")
        while True:
            names = self._names() + [p.name for p in self.versions_dir.iterdir()]
            number = 1 + max((int(n.split("-", 1)[0]) for n in names if n.split("-", 1)[0].isdigit()), default=0)
            name = f"{number:05d}-{stamp}"
            try:
                os.rename(work, self.versions_dir / name)  # fails if another publisher took this number
            except OSError:
                if (self.versions_dir / name).exists():
                    continue
                raise
            paths.fsync_dir(self.versions_dir)
            return name

    def rollback(self, version: str | None = None) -> str:
        """Put ``version`` (default: the one published before the current one) back in service."""
        names = self._names()
        if version is None:
            cur = self.current()
            older = [n for n in names if cur is None or n < cur]
            if not older:
                raise ArtifactError("no earlier artifact version to roll back to")
            version = older[-1]
        elif version not in names:
            raise ArtifactError(f"unknown artifact version {version!r}; have: {', '.join(names) or 'none'}")
        self._set_current(version)
        return version

    def forget_user(self, user_id: str) -> int:
        """Delete the folder ``personal/<user_id>`` (that id exactly) from every version and every set still being
        built, after removing the stale builds of dead publishers whole; returns the folders removed."""
        ids.check(user_id, "user")
        self._clean_stale()
        removed = 0
        for parent in (self.versions_dir, self.tmp_dir):
            for entry in sorted(parent.iterdir()):
                if not entry.is_dir() or entry.is_symlink():
                    continue
                folder = ids.child_path(entry, "personal", user_id)
                if folder.is_dir():
                    shutil.rmtree(folder)
                    removed += 1
        return removed
