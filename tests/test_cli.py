from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import selflearn
from selflearn.artifacts import ArtifactStore
from selflearn.cli.main import app
from selflearn.home import find_home
from selflearn.sim import logsample
from selflearn.store.logstore import Store

runner = CliRunner()


def _json(args: list[str]) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # exactly one JSON object, nothing else on stdout


def test_version_and_help() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and result.stdout.strip() == selflearn.__version__
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("ingest", "forget", "artifacts", "eval", "bench", "demo"):
        assert command in result.stdout


RUNS_UNTIL_STOPPED = {("serve",), ("wyoming",)}  # servers: they print no result, only logs, until stopped


def _leaf_commands(command: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        return [(path, command)]
    return [leaf for name, sub in subcommands.items() for leaf in _leaf_commands(sub, (*path, name))]


def test_every_result_printing_command_has_json() -> None:
    from typer.main import get_command

    leaves = _leaf_commands(get_command(app))
    assert len(leaves) > 20 and {path for path, _ in leaves} >= RUNS_UNTIL_STOPPED
    missing = [
        " ".join(path)
        for path, command in leaves
        if path not in RUNS_UNTIL_STOPPED
        and not any("--json" in getattr(p, "opts", ()) for p in getattr(command, "params", ()))
    ]
    assert not missing, f"commands without --json: {missing}"


def test_small_commands_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFLEARN_HOME", str(tmp_path / "home"))
    assert _json(["version", "--json"]) == {"version": selflearn.__version__}
    generated = _json(["homes", "generate", "--out", str(tmp_path / "homes"), "--count", "2", "--json"])["homes"]
    assert len(generated) == 2 and all(Path(h["path"]).is_file() for h in generated)
    db = str(tmp_path / "logs.duckdb")
    pref = _json(["prefs", "set", "u1", "team", "the lakers", "--db", db, "--json"])["preference"]
    assert pref["user_id"] == "u1" and pref["kind"] == "team"
    assert _json(["prefs", "delete", "u1", "--db", db, "--json"]) == {"user_id": "u1", "deleted": 1}
    token_id = _json(["tokens", "create", "--home", "maple_house", "--json"])["id"]
    assert _json(["tokens", "revoke", token_id, "--json"]) == {"revoked": token_id}
    result = runner.invoke(app, ["tokens", "revoke", token_id, "--json"])
    assert result.exit_code != 0 and json.loads(result.stdout)["error"]


def test_demo_json(tmp_path: Path) -> None:
    args = ["demo", "--homes", "1", "--days", "2", "--seed", "1", "--out", str(tmp_path / "r.html")]
    data = _json([*args, "--db", str(tmp_path / "logs.duckdb"), "--artifacts", str(tmp_path / "a"), "--json"])
    assert [d["day"] for d in data["days"]] == [1, 2] and len(data["control"]) == 2
    assert data["metrics"]["defect_rate_day1"] == data["days"][0]["defect_rate"]
    assert Path(data["report"]).is_file()


def test_eval_list_and_ingest_quick_json() -> None:
    result = runner.invoke(app, ["eval", "list"])
    assert result.exit_code == 0 and "ingest" in result.stdout.split()
    data = _json(["eval", "ingest", "--quick", "--json"])
    assert data["suite"] == "ingest" and data["metrics"]["rows_lost"] == 0
    assert runner.invoke(app, ["eval", "nope", "--json"]).exit_code == 2


def test_ingest_and_forget(tmp_path: Path) -> None:
    log = logsample.generate(200, seed=1)
    logsample.write_log(log, tmp_path / "logs", fmt="jsonl")
    (tmp_path / "logs" / "turns.jsonl").open("a").write("{not json\n")
    db = tmp_path / "x.duckdb"
    q = tmp_path / "q.jsonl"
    report = _json(["ingest", str(tmp_path / "logs"), "--db", str(db), "--quarantine", str(q), "--json"])
    assert report["read"] == 200 + 200 + len(log.feedback) + 1
    assert report["quarantined"] == 1 and report["duplicates"] == 0
    assert report["read"] == report["ingested"] + report["duplicates"] + report["quarantined"]
    assert len(q.read_text().splitlines()) == 1
    again = _json(["ingest", str(tmp_path / "logs"), "--db", str(db), "--quarantine", str(q), "--json"])
    assert again["ingested"] == 0 and again["duplicates"] == report["ingested"]

    user = log.turns[0].user_id
    n_user = sum(t.user_id == user for t in log.turns)
    artifacts = tmp_path / "art"

    def build(d: Path) -> None:
        (d / "personal" / user).mkdir(parents=True)
        (d / "personal" / user / "rewrites.parquet").write_text("{}")

    ArtifactStore(artifacts).publish(build, meta={})
    out = _json(["forget", user, "--db", str(db), "--artifacts", str(artifacts), "--json"])
    assert out["user_id"] == user
    assert out["deleted"]["turns"] == n_user and out["deleted"]["gold"] == n_user
    assert out["deleted"]["personal_artifacts"] == 1 and out["verified"] and out["left"] == []
    with Store(db) as store:
        assert store.logs().turns(user_id=user).height == 0
    plain = runner.invoke(app, ["ingest", str(tmp_path / "missing"), "--db", str(db)])
    assert plain.exit_code == 2


def test_artifacts_list_and_rollback(tmp_path: Path) -> None:
    root = tmp_path / "art"
    assert _json(["artifacts", "list", "--artifacts", str(root), "--json"]) == {"versions": []}
    store = ArtifactStore(root)
    v1 = store.publish(lambda d: None, meta={"n": 1})
    v2 = store.publish(lambda d: None, meta={"n": 2})
    listed = _json(["artifacts", "list", "--artifacts", str(root), "--json"])["versions"]
    assert [(v["version"], v["current"], v["meta"]) for v in listed] == [(v1, False, {"n": 1}), (v2, True, {"n": 2})]
    assert _json(["artifacts", "rollback", "--artifacts", str(root), "--json"]) == {"current": v1}
    assert runner.invoke(app, ["artifacts", "rollback", "--artifacts", str(root)]).exit_code == 2
    assert runner.invoke(app, ["artifacts", "list", "--artifacts", str(root)]).exit_code == 0


def test_bench_ingest_json_reports_both_formats_against_baseline() -> None:
    data = _json(["bench", "ingest", "--rows", "1000", "--json"])
    assert data["rows"] == 1000
    for fmt in ("parquet", "jsonl"):
        r = data[fmt]
        assert r["rows_per_s"] > 0 and r["baseline_rows_per_s"] > 0
        assert set(r) == {
            "seconds",
            "rows_per_s",
            "rows_per_min",
            "baseline_seconds",
            "baseline_rows_per_s",
            "ratio_vs_baseline",
        }


def test_json_stays_one_object_with_logging_and_quiet_silences_stderr() -> None:
    args = ["bench", "ingest", "--rows", "100", "--json"]
    result = runner.invoke(app, args)  # progress is on by default: its log records go to stderr
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 100  # stdout is exactly one JSON object
    assert "INFO" in result.stderr and "writing 100 turns" in result.stderr  # a record of selflearn.bench.ingest
    assert "━" not in result.stderr  # stderr is not a terminal here: no bar
    quiet = runner.invoke(app, ["-q", *args])
    assert quiet.exit_code == 0 and json.loads(quiet.stdout)["rows"] == 100 and quiet.stderr == ""
    verbose = runner.invoke(app, ["--verbose", *args])
    assert verbose.exit_code == 0 and "ingest.py" in verbose.stderr  # -v: where each record comes from


def test_homes_list_and_generate(tmp_path: Path) -> None:
    listed = _json(["homes", "list", "--json"])["homes"]
    assert {"maple_house", "city_flat", "oak_manor"} <= {h["id"] for h in listed}
    result = runner.invoke(app, ["homes", "generate", "--out", str(tmp_path), "--count", "2", "--seed", "5"])
    assert result.exit_code == 0, result.output
    written = sorted(tmp_path.glob("*.yaml"))
    assert len(written) == 2
    assert find_home(written[0]).devices


def test_wyoming_refuses_a_uri_it_cannot_serve_and_an_unknown_home() -> None:
    assert runner.invoke(app, ["wyoming", "--uri", "stdio://"]).exit_code == 2
    assert runner.invoke(app, ["wyoming", "--home", "no_such_home"]).exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["forget", "../../etc"],
        ["prefs", "list", "x/../maple.ben"],
        ["prefs", "delete", ".hidden"],
        ["teach", "I'm a Warriors fan", "--user", "/etc/passwd"],
        ["interpret", "turn on the light", "--user", ".."],
        ["interpret", "turn on the light", "--device", "../ep"],
        ["rewrite", "lights of", "--user", "a\\b"],
    ],
)
def test_hostile_ids_are_a_one_line_usage_error(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "is not a valid id" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_readers_of_a_store_that_does_not_exist_say_so_and_create_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent" / "x.duckdb"
    for args in (
        ["learn", "--db", str(missing), "--artifacts", str(tmp_path / "art")],
        ["interpret", "turn on the lights", "--db", str(missing), "--no-rewrite"],
        ["fpi", "--db", str(missing)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        said = "".join(result.output.split())  # rich wraps long paths
        assert str(missing) in said and ("nostoreat" in said or "doesnotexist" in said), args
        assert not missing.parent.exists()
    assert ArtifactStore(tmp_path / "art").current() is None


def test_hostile_home_yaml_is_one_line_usage_error(tmp_path: Path) -> None:
    laughs = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        laughs.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    path = tmp_path / "lol.yaml"
    path.write_text("\n".join([*laughs, "areas: *i", "devices: []", "endpoints: []", "id: lol"]) + "\n")
    for args in (
        ["eval", "context", "--quick", "--home", str(path)],
        ["rewrite", "x", "--user", "u", "--home", str(path)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "refusing home file" in result.output and "aliases are expanded" in result.output
        assert "Traceback" not in result.output
