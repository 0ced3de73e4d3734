from __future__ import annotations

import json

import pytest

from selflearn.errors import NotFound
from selflearn.eval import harness as evaluate


def test_registry_finds_suites_and_rejects_unknown() -> None:
    assert "ingest" in evaluate.available()
    with pytest.raises(NotFound, match="unknown eval suite"):
        evaluate.run("no-such-suite", evaluate.EvalConfig())


def test_registering_a_name_twice_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluate, "_REGISTRY", dict(evaluate._REGISTRY))

    def one(config: evaluate.EvalConfig) -> evaluate.EvalResult:
        return evaluate.EvalResult(n=1, metrics={"m": 1})

    def two(config: evaluate.EvalConfig) -> evaluate.EvalResult:
        return evaluate.EvalResult(n=1, metrics={"m": 2})

    evaluate.suite("twice")(one)
    evaluate.suite("twice")(one)  # the same function again (a module re-import) is fine
    with pytest.raises(ValueError, match="registered twice"):
        evaluate.suite("twice")(two)


def test_report_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluate, "_REGISTRY", dict(evaluate._REGISTRY))

    @evaluate.suite("contract")
    def run(config: evaluate.EvalConfig) -> evaluate.EvalResult:
        return evaluate.EvalResult(n=3, metrics={"acc": 0.5, "count": 7, "flag": True}, baseline={"acc": 0.25})

    report = evaluate.run("contract", evaluate.EvalConfig(seed=4))
    data = json.loads(report.to_json())
    assert list(data) == ["suite", "seed", "n", "seconds", "metrics", "baseline"]
    assert data["suite"] == "contract" and data["seed"] == 4 and data["n"] == 3
    assert data["metrics"] == {"acc": 0.5, "count": 7, "flag": 1}
    assert data["baseline"] == {"acc": 0.25}
    assert isinstance(data["seconds"], float)


def test_nan_metric_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluate, "_REGISTRY", dict(evaluate._REGISTRY))

    @evaluate.suite("nan")
    def run(config: evaluate.EvalConfig) -> evaluate.EvalResult:
        return evaluate.EvalResult(n=1, metrics={"bad": float("nan")})

    with pytest.raises(ValueError, match="NaN"):
        evaluate.run("nan", evaluate.EvalConfig())


def test_ingest_suite_quick_loses_nothing() -> None:
    report = evaluate.run("ingest", evaluate.EvalConfig(seed=1, quick=True))
    m = report.metrics
    assert m["rows_lost"] == 0
    assert m["rows_read"] == m["rows_ingested"] + m["rows_duplicates"] + m["rows_quarantined"]
    assert m["rows_quarantined"] == m["corruptions_injected"] > 0
    assert m["rows_duplicates"] == m["duplicates_injected"]
    assert m["corruptions_caught"] == 1.0 and m["valid_rows_rejected"] == 0 and m["reingest_new_rows"] == 0


def test_ingest_suite_runs_on_an_unseen_home(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from selflearn.home import dump_home, shipped_homes

    home = shipped_homes()[0].model_copy(update={"id": "unseen_home"})
    dump_home(home, tmp_path / "unseen.yaml")
    report = evaluate.run("ingest", evaluate.EvalConfig(quick=True, home=tmp_path / "unseen.yaml"))
    assert report.metrics["rows_lost"] == 0 and report.metrics["corruptions_caught"] == 1.0
