from __future__ import annotations

import ast
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

import selflearn
from selflearn import progress
from selflearn.bench.ingest import ingest_bench


def _console(buf: io.StringIO, terminal: bool) -> Console:
    return Console(file=buf, force_terminal=terminal, width=100, color_system=None)


@pytest.fixture(autouse=True)
def _restore(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Leave logging and the bar state as they were: other tests' records go where they went before."""
    monkeypatch.setattr(progress, "_console", progress._console)
    monkeypatch.setattr(progress, "_bars", progress._bars)
    logger = logging.getLogger(progress.LOGGER)
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_a_library_modules_record_reaches_the_rich_handler() -> None:
    buf = io.StringIO()
    progress.configure(progress.NORMAL, console=_console(buf, terminal=False))
    ingest_bench(50, seed=1)  # logs with logging.getLogger("selflearn.bench.ingest")
    out = buf.getvalue()
    assert "INFO" in out and "writing 50 turns" in out and "ingesting jsonl" in out
    assert "━" not in out  # not a terminal: records only, no bar drawn


def test_quiet_keeps_warnings_only_and_verbose_adds_debug() -> None:
    buf = io.StringIO()
    progress.configure(progress.QUIET, console=_console(buf, terminal=True))
    logger = logging.getLogger("selflearn.some.module")
    logger.info("progress message")
    logger.warning("something odd")
    assert list(progress.track(range(3), "work")) == [0, 1, 2]
    assert "progress message" not in buf.getvalue() and "something odd" in buf.getvalue()
    assert "work" not in buf.getvalue()  # -q: no bar even on a terminal

    buf = io.StringIO()
    progress.configure(progress.VERBOSE, console=_console(buf, terminal=False))
    logger.debug("a detail")
    assert "a detail" in buf.getvalue()


def test_configure_twice_installs_one_handler() -> None:
    progress.configure(progress.NORMAL, console=_console(io.StringIO(), terminal=False))
    progress.configure(progress.NORMAL, console=_console(io.StringIO(), terminal=False))
    installed = [h for h in logging.getLogger(progress.LOGGER).handlers if isinstance(h, progress._Handler)]
    assert len(installed) == 1


def test_bars_only_on_a_terminal_and_they_nest() -> None:
    buf = io.StringIO()
    progress.configure(progress.NORMAL, console=_console(buf, terminal=False))
    assert [(i, j) for i in progress.track(range(2), "outer") for j in progress.track("ab", "inner")] == [
        (0, "a"),
        (0, "b"),
        (1, "a"),
        (1, "b"),
    ]
    assert buf.getvalue() == ""

    buf = io.StringIO()
    progress.configure(progress.NORMAL, console=_console(buf, terminal=True))
    seen = [(i, j) for i in progress.track(range(2), "outer") for j in progress.track("ab", "inner")]
    assert len(seen) == 4
    drawn = buf.getvalue()
    assert "outer" in drawn and "inner" in drawn and "━" in drawn  # one live display, two lines: no LiveError
    with progress.bar() as bar:  # the live display was released: a new one can start
        task = bar.add_task("next", total=1)
        bar.advance(task)


def test_no_print_outside_the_cli_and_none_to_stderr() -> None:
    """Diagnostics are log records; ``print`` is only the CLI writing a command's result to stdout."""
    root = Path(selflearn.__file__).parent
    found = [
        f"{path.relative_to(root)}:{node.lineno}"
        for path in sorted(root.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
        and (path.parent.name != "cli" or any(k.arg == "file" for k in node.keywords))
    ]
    assert not found, f"print( outside the CLI's stdout results (log with logging.getLogger(__name__)): {found}"
