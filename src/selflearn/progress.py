"""What a long run shows people on stderr: log records through Rich's handler, and progress bars only when stderr is
a terminal (a pipe or a CI log gets the records, never bar redraws). stdout stays the command's result.

Library modules log with ``logging.getLogger(__name__)`` (all under ``selflearn``) and wrap long loops in ``track``;
the CLI calls ``configure`` once. Without it (tests, the service, a notebook) records go wherever the host's logging
sends them and no bar is drawn. Bars nest: a loop inside a loop adds a line to the bar already on screen (Rich
allows one live display at a time)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sized
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn

T = TypeVar("T")
LOGGER = "selflearn"
QUIET, NORMAL, VERBOSE = -1, 0, 1

_console = Console(stderr=True)
_bars = False
_live: Progress | None = None


class _Handler(RichHandler):
    """The handler ``configure`` installs (a subclass, so a second ``configure`` replaces it instead of adding one)."""


def configure(verbosity: int = NORMAL, console: Console | None = None) -> None:
    """Route the ``selflearn`` loggers to Rich on stderr: ``QUIET`` warnings only and no bars, ``NORMAL`` progress
    messages too, ``VERBOSE`` (or more) debug records as well. Bars only when the console is a terminal."""
    global _console, _bars
    _console = console or Console(stderr=True)
    _bars = verbosity > QUIET and _console.is_terminal
    logger = logging.getLogger(LOGGER)
    for old in [h for h in logger.handlers if isinstance(h, _Handler)]:
        logger.removeHandler(old)
    logger.addHandler(_Handler(console=_console, show_time=False, show_path=verbosity >= VERBOSE, markup=False))
    logger.setLevel(logging.WARNING if verbosity <= QUIET else logging.INFO if verbosity == NORMAL else logging.DEBUG)


def console() -> Console:
    """The stderr console that log records and bars share (so records print above a running bar, not through it)."""
    return _console


@contextmanager
def bar(*columns: str | ProgressColumn) -> Iterator[Progress]:
    """A Rich ``Progress`` on stderr (default columns: description, bar, done/total, elapsed), transient; disabled
    (its methods do nothing) when bars are off. Loops run inside it (``track``) add their lines to it."""
    global _live
    if _live is not None:  # nested: the outer bar is on screen already
        yield _live
        return
    columns = columns or (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=_console, transient=True, disable=not _bars) as live:
        _live = live
        try:
            yield live
        finally:
            _live = None


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Yield ``items`` with a bar line on stderr while they are consumed (nothing drawn when bars are off)."""
    if not _bars:
        yield from items
        return
    with bar() as live:
        if total is None and isinstance(items, Sized):
            total = len(items)
        task = live.add_task(description, total=total)
        try:
            for item in items:
                yield item
                live.advance(task)
        finally:
            live.remove_task(task)
