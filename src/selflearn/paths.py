"""Where selflearn keeps its data on this machine: one data dir, overridable per command or by environment."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

PACKAGE_DATA = Path(__file__).resolve().parent / "data"  # shipped with the package: homes, templates, SLURP data


def data_dir() -> Path:
    root = os.environ.get("SELFLEARN_HOME")
    return Path(root) if root else Path(user_data_dir("selflearn", appauthor=False))


def default_db() -> Path:
    env = os.environ.get("SELFLEARN_DB")
    return Path(env) if env else data_dir() / "logs.duckdb"


def fsync_dir(path: Path) -> None:
    """Make a rename or new entry in ``path`` durable (the directory itself is fsynced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def default_artifacts() -> Path:
    env = os.environ.get("SELFLEARN_ARTIFACTS")
    return Path(env) if env else data_dir() / "artifacts"
