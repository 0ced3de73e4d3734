"""The CLI's error contract, tried with bad invocations of every command group: exit code 2 (bad argument or input) or
1 (failure), exactly one line on stderr, never a traceback, and with ``--json`` a JSON error on stdout."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import selflearn
from selflearn.cli.main import main
from selflearn.errors import Conflict, NotFound, SelflearnError, UsageError
from selflearn.home import HomeError
from selflearn.sim import logsample
from selflearn.store.connection import StoreError
from selflearn.store.logstore import Store

# (argv with placeholders, expected exit code). Placeholders: {tmp} a scratch folder, {locked} a store another
# process holds, {busy_port} a port another socket listens on, {db} a fresh store path, {empty_db} a store with no
# turns, {logs} a small valid log folder; bad files: {bad_yaml} (not YAML), {partial_yaml} (YAML, not a home),
# {not_log}, {junk_db} (not a DuckDB file).
# "--json" is added wherever the command has that option.
BAD: list[tuple[str, int]] = [
    # top level
    ("nosuchcommand", 2),
    ("--nosuchflag", 2),
    ("--json eval nosuch", 2),
    # eval
    ("eval nosuch --json", 2),
    ("eval", 2),
    ("eval context --home {tmp}/missing.yaml --json", 2),
    ("eval context --home {tmp} --json", 2),
    ("eval context --home {bad_yaml} --json", 2),
    ("eval context --home {partial_yaml} --json", 2),
    ("eval ingest --seed -1 --json", 2),
    # learn
    ("learn --db {locked} --json", 1),
    ("learn --db {tmp} --json", 2),
    ("learn --db {junk_db} --json", 1),
    ("learn --db {db} --home {tmp}/missing.yaml --json", 2),
    ("learn --db {db} --home {bad_yaml} --json", 2),
    # simulate
    ("simulate --homes 0 --json", 2),
    ("simulate --days -1 --json", 2),
    ("simulate --workers 0 --json", 2),
    ("simulate --home {tmp}/missing.yaml --json", 2),
    ("simulate --home {bad_yaml} --out {tmp}/sim --json", 2),
    ("simulate --homes 1 --out {bad_yaml} --json", 2),
    ("simulate --homes 1 --days 1 --out {tmp}/sim2 --db {locked} --home {good_yaml} --json", 1),
    # demo
    ("demo --days -1", 2),
    ("demo --homes 0", 2),
    ("demo --out {tmp}", 2),
    ("demo --homes 1 --days 1 --db {locked}", 1),
    # fpi
    ("fpi --days 0 --json", 2),
    ("fpi --db {tmp}/missing.duckdb --json", 2),
    ("fpi --top -1 --json", 2),
    ("fpi --home {bad_yaml} --days 1 --json", 2),
    ("fpi --db {empty_db} --json", 2),
    # bench
    ("bench ingest --rows 0 --json", 2),
    ("bench simulate --homes 0 --json", 2),
    ("bench rewrite --queries 0 --json", 2),
    ("bench rewrite --sizes abc --json", 2),
    ("bench rewrite --sizes 0 --json", 2),
    ("bench serve --concurrency 0 --json", 2),
    ("bench dashboard --turns 0 --json", 2),
    ("bench dashboard --repeats 0 --json", 2),
    ("bench labels --dialogues 0 --json", 2),
    ("bench fpi --dialogues -3 --json", 2),
    ("bench learn --turns -5 --json", 2),
    ("bench interpret --repeats 0 --json", 2),
    ("bench nosuch", 2),
    # ingest
    ("ingest {tmp}/missing.jsonl --db {db} --json", 2),
    ("ingest {logs} --db {db} --quarantine {tmp} --json", 2),
    ("ingest {not_log} --db {db} --json", 2),
    ("ingest {logs} --db {locked} --json", 1),
    ("ingest {logs} --db {tmp} --json", 2),
    ("ingest", 2),
    # interpret
    ("interpret hi --time junk --json", 2),
    ("interpret hi --time 2000-01-01T00:00:00+13:59x --json", 2),
    ("interpret hi --time 0001-01-01T00:00:00+13:59 --json", 2),
    ("interpret hi --home nosuch --json", 2),
    ("interpret hi --home {bad_yaml} --json", 2),
    ("interpret hi --device nosuch --json", 2),
    ("interpret hi --db {locked} --json", 1),
    ("interpret --json", 2),
    # teach, prefs
    ('teach "I\'m a Warriors fan" --user maple.ana --db {locked} --json', 1),
    ("teach 'turn on the tv' --user maple.ana --db {db} --json", 1),
    ("teach hello --user maple.ana --home nosuch --json", 2),
    ("prefs list maple.ana --db {locked} --json", 1),
    ("prefs set maple.ana badkind red --db {db}", 2),
    ("prefs set maple.ana team Warriors --db {locked}", 1),
    ("prefs delete maple.ana --db {locked}", 1),
    # serve (fails before it listens)
    ("serve --db {locked} --port 0", 1),
    ("serve --port 70000", 2),
    ("serve --port {busy_port} --db {db}", 1),
    ("serve --home {tmp}/missing.yaml", 2),
    ("serve --home {bad_yaml} --db {db}", 2),
    # forget, artifacts, rewrite
    ("forget ../../etc --db {db} --artifacts {tmp}/art --json", 2),
    ("forget maple.ana --db {locked} --json", 1),
    ("forget maple.ana --db {db} --quarantine {tmp} --json", 2),
    ("artifacts rollback nosuch --artifacts {tmp}/art --json", 2),
    ("artifacts list --artifacts {bad_yaml} --json", 2),
    ("rewrite hi --user maple.ana --artifacts {tmp}/empty --json", 2),
    ("rewrite hi --user maple.ana --home nosuch --json", 2),
    ("rewrite hi --json", 2),
    # tokens, homes
    ("tokens create --json", 2),
    ("tokens revoke nosuch", 1),
    ("tokens list --json", 1),  # with a corrupt tokens.json (written by the fixture)
    ("homes generate --out {bad_yaml}", 2),
    ("homes generate --out {tmp}/h --count 0", 2),
    ("homes list --nosuch", 2),
]


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The files the invocations name, and a store held open by another process (DuckDB: one writer per file)."""
    tmp = tmp_path_factory.mktemp("bad")
    logs = tmp / "logs"
    logsample.write_log(logsample.generate(20, seed=1), logs, fmt="jsonl")
    (tmp / "bad.yaml").write_text("id: [unclosed\n  areas: {")
    (tmp / "partial.yaml").write_text("id: half_a_home\n")
    Store(tmp / "empty.duckdb").close()
    (tmp / "not_a_log.txt").write_text("hello")
    (tmp / "junk.duckdb").write_text("not a database")
    (tmp / "empty").mkdir()
    good = Path(selflearn.__file__).parent / "data" / "homes" / "maple_house.yaml"
    locked = tmp / "locked.duckdb"
    Store(locked).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({str(locked)!r}); print('ok', flush=True); "
         "sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
    busy = socket.create_server(("127.0.0.1", 0))
    yield {
        "busy_port": str(busy.getsockname()[1]),
        "tmp": str(tmp),
        "logs": str(logs),
        "bad_yaml": str(tmp / "bad.yaml"),
        "partial_yaml": str(tmp / "partial.yaml"),
        "empty_db": str(tmp / "empty.duckdb"),
        "good_yaml": str(good),
        "not_log": str(tmp / "not_a_log.txt"),
        "junk_db": str(tmp / "junk.duckdb"),
        "locked": str(locked),
        "holder_pid": str(holder.pid),
    }
    busy.close()
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(timeout=30)


def _argv(template: str, places: dict[str, str], tmp_path: Path) -> list[str]:
    return [part.format(**places, db=tmp_path / "s.duckdb") for part in shlex.split(template)]


@pytest.mark.parametrize(("template", "code"), BAD, ids=[t for t, _ in BAD])
def test_bad_invocation_is_one_line_and_an_exit_code(
    template: str,
    code: int,
    places: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    _isolated_data_dir: Path,
) -> None:
    (_isolated_data_dir / "tokens.json").write_text("{not json")
    argv = _argv(template, places, tmp_path)
    assert main(argv) == code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    if "--json" in argv:
        assert json.loads(captured.out) == {"error": lines[0].removeprefix("error: "), "code": code}
    if "{locked}" in template:
        assert f"in use by another process (pid {places['holder_pid']})" in lines[0]


def test_enough_bad_invocations_across_every_group() -> None:
    assert len(BAD) >= 40
    groups = {t.split()[0] for t, _ in BAD}
    commands = ("eval", "learn", "simulate", "demo", "fpi", "bench", "ingest", "interpret", "teach", "prefs", "serve")
    assert set(commands) | {"forget", "artifacts", "rewrite", "tokens", "homes"} <= groups


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed entry point's path: ``selflearn.cli.main:app`` called as the console script calls it."""
    return subprocess.run(
        [sys.executable, "-c", "from selflearn.cli.main import app; app()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_console_script_maps_errors_and_debug_shows_the_traceback(places: dict[str, str]) -> None:
    version = _run("--version")
    assert version.returncode == 0 and version.stdout.strip() == selflearn.__version__
    plain = _run("learn", "--db", places["locked"], "--json")
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert plain.stderr.strip().count("\n") == 0 and "in use by another process" in plain.stderr
    assert json.loads(plain.stdout)["code"] == 1
    debug = _run("--debug", "learn", "--db", places["locked"])
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "StoreError" in debug.stderr
    module = subprocess.run(
        [sys.executable, "-m", "selflearn", "simulate", "--homes", "0"], capture_output=True, text=True, timeout=120
    )
    assert module.returncode == 2 and module.stderr.count("\n") == 1


def test_project_errors_carry_their_exit_code_and_http_status() -> None:
    assert (UsageError.exit_code, NotFound.exit_code, Conflict.exit_code, SelflearnError.exit_code) == (2, 2, 1, 1)
    assert (UsageError.http_status, NotFound.http_status, Conflict.http_status) == (422, 404, 409)
    assert issubclass(HomeError, UsageError) and issubclass(StoreError, SelflearnError)
