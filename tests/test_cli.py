from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import selflearn
from selflearn import logsample
from selflearn.artifacts import ArtifactStore
from selflearn.cli import app
from selflearn.home import find_home
from selflearn.store import Store

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
        (d / "personal").mkdir()
        (d / "personal" / f"{user}.json").write_text("{}")

    ArtifactStore(artifacts).publish(build, meta={})
    out = _json(["forget", user, "--db", str(db), "--artifacts", str(artifacts), "--json"])
    assert out["user_id"] == user
    assert out["deleted"]["turns"] == n_user and out["deleted"]["gold"] == n_user
    assert out["deleted"]["artifact_files"] == 1
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


def test_homes_list_and_generate(tmp_path: Path) -> None:
    listed = _json(["homes", "list", "--json"])["homes"]
    assert {"maple_house", "city_flat", "oak_manor"} <= {h["id"] for h in listed}
    result = runner.invoke(app, ["homes", "generate", "--out", str(tmp_path), "--count", "2", "--seed", "5"])
    assert result.exit_code == 0, result.output
    written = sorted(tmp_path.glob("*.yaml"))
    assert len(written) == 2
    assert find_home(written[0]).devices


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
