"""The learner contract (learners/base.py): every learner fits on logs, its artifact saves, loads into a fresh object
and applies the same; ``learn`` publishes the union of the configured learners' artifacts; a set published by the
code before the contract (commit 0befa15, tests/data/artifacts_0befa15) loads, re-saves in the same format and
rewrites the same."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from selflearn.artifacts import ArtifactStore
from selflearn.home import Home, load_home
from selflearn.learners.base import Artifact, Evidence, Learner, TooLittle, save_set
from selflearn.learners.fpi import FpiLearner, FpiModel
from selflearn.learners.fpi_rules import FpiConfig
from selflearn.learners.labels.learner import LabelModel
from selflearn.learners.learn import LearnConfig, learn
from selflearn.learners.mining import RewriteMiner, RewriteTables
from selflearn.learners.signals import DefectSignals, Signals, evidence
from selflearn.learners.what_worked import RetrievalLearner, RetrievalTables
from selflearn.runtime.form_index import save_indexes
from selflearn.runtime.rewriter import OnlineRewriter
from selflearn.store.logview import LogView

DATA = Path(__file__).parent / "data"
OLD_SET = DATA / "artifacts_0befa15"
LOGS = DATA / "logs_0befa15"


@pytest.fixture(scope="module")
def logs() -> LogView:
    turns = pl.read_parquet(LOGS / "turns.parquet")
    return LogView(turns.to_arrow(), pl.read_parquet(LOGS / "feedback.parquet").to_arrow())


@pytest.fixture(scope="module")
def homes() -> dict[str, Home]:
    return {h.id: h for h in (load_home(f) for f in sorted((LOGS / "homes").glob("*.yaml")))}


def test_evidence_is_scored_once_and_passed_through(logs: LogView) -> None:
    ev = evidence(logs)
    assert isinstance(ev, Evidence) and evidence(ev) is ev
    assert ev.scored.height == logs.turns().height and "defect" in ev.scored.columns
    assert ev.turns().height == logs.turns().height and ev.with_links(None).scored is ev.scored


def test_find_is_none_for_a_set_without_the_artifact(tmp_path: Path) -> None:
    for kind in (RewriteTables, RetrievalTables, FpiModel, LabelModel, Signals):
        assert kind.find(tmp_path) is None
    RewriteTables().save(tmp_path)
    assert isinstance(RewriteTables.find(tmp_path), RewriteTables)


def _learners() -> dict[str, Callable[[], Learner[Artifact]]]:
    from selflearn.learners.labels.learner import LabelLearner
    from selflearn.learners.span import SpanConfig, SpanLearner
    from test_labels import TINY, BagOfWordsEncoder

    return {
        "signals": DefectSignals,
        "mining": RewriteMiner,
        "retrieval": RetrievalLearner,
        "fpi": lambda: FpiLearner(FpiConfig(max_iter=40)),
        "span": lambda: SpanLearner(SpanConfig(max_pairs=120, epochs=4, max_len=32)),
        "labels": lambda: LabelLearner(TINY, encoder=BagOfWordsEncoder()),
    }


def _load(artifact: Artifact, root: Path) -> Artifact:
    """``load`` into a fresh object (the label model with the stand-in text encoder it was fitted with)."""
    if isinstance(artifact, LabelModel):
        return LabelModel.load(root, encoder=artifact.encoder)
    return type(artifact).load(root)


def _frames_equal(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert_frame_equal(a, b, check_exact=False, rel_tol=1e-5)


@pytest.mark.parametrize("name", ["signals", "mining", "retrieval", "fpi", "span", "labels"])
def test_every_learner_fits_saves_loads_and_applies_the_same(name: str, logs: LogView, tmp_path: Path) -> None:
    learner = _learners()[name]()
    assert learner.name == name
    artifact = learner.fit(logs)
    artifact.save(tmp_path)
    assert (tmp_path / type(artifact).marker).exists()
    again = _load(artifact, tmp_path)
    assert again is not artifact
    applied = artifact.apply(logs)
    assert applied.columns[0] == "turn_id" and applied.height == logs.turns().height
    _frames_equal(applied, again.apply(logs))
    assert isinstance(artifact.summary(), dict)


def test_the_mined_tables_apply_the_rules_they_hold(logs: LogView) -> None:
    tables = RewriteMiner().fit(logs)
    assert tables.personal_table.height > 0
    applied = tables.apply(logs).join(logs.turns().select("turn_id", "user_id"), on="turn_id")
    hit = applied.filter(pl.col("layer") == "personal").row(0, named=True)
    rule = tables.personal_table.filter(pl.col("user_id") == hit["user_id"], pl.col("target") == hit["target"])
    assert rule.height >= 1


def test_learn_publishes_the_union_of_the_configured_learners(logs: LogView, tmp_path: Path) -> None:
    small = learn(logs, ArtifactStore(tmp_path / "a"), config=LearnConfig(shadow=False))
    store = ArtifactStore(tmp_path / "b")
    more = learn(logs, store, config=LearnConfig(shadow=False, learners=("signals", "mining", "retrieval", "fpi")))
    root = store.current_dir()
    assert root is not None and small.published and more.published
    assert "fpi" in more.parts and "fpi" not in small.parts
    assert {"signals", "retrieval"} <= set(small.parts)
    for kind in (RewriteTables, RetrievalTables, Signals, FpiModel):
        assert kind.find(root) is not None, kind
    assert LabelModel.find(root) is None
    assert FpiModel.load(root).apply(logs).height == logs.turns().height


def test_a_learner_with_too_little_is_left_out(tmp_path: Path) -> None:
    from selflearn.learners.finetune import EncoderTuner

    with pytest.raises(TooLittle, match="mined pairs"):
        EncoderTuner().fit(LogView.from_records([]))


def _layout(root: Path) -> dict[str, Any]:
    """File names of a set (but its meta) and each Parquet file's columns."""
    out: dict[str, Any] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "meta.json"):
        rel = str(path.relative_to(root))
        out[rel] = pl.read_parquet_schema(path) if path.suffix == ".parquet" else None
    return out


def test_a_set_published_before_the_contract_loads_resaves_and_rewrites_the_same(
    logs: LogView, homes: dict[str, Home], tmp_path: Path
) -> None:
    kinds: list[type[Artifact]] = [RewriteTables, RetrievalTables, FpiModel, LabelModel]
    loaded = [kind.load(OLD_SET) for kind in kinds]
    save_set(tmp_path, loaded)
    save_indexes(tmp_path)
    assert _layout(tmp_path) == _layout(OLD_SET)
    expected = pl.read_parquet(DATA / "expected_0befa15.parquet")
    turns = logs.turns().join(expected.select("turn_id"), on="turn_id", how="semi")
    rewriter = OnlineRewriter.load(tmp_path)
    rewrites = []
    for text, user, home in turns.select("asr_text", "user_id", "home_id").iter_rows():
        best = rewriter.best(text or "", user_id=user, home=homes[home])
        rewrites.append(None if best is None else best.text)
    got = turns.select("turn_id").with_columns(rewrite=pl.Series(rewrites, dtype=pl.String))
    want = expected.select("turn_id", "rewrite")
    assert got.join(want, on="turn_id").filter(pl.col("rewrite").ne_missing(pl.col("rewrite_right"))).height == 0
    assert want["rewrite"].drop_nulls().len() > 0
    fpi = FpiModel.load(tmp_path).apply(logs).select("turn_id", failure_point="pred_failure_point")
    _frames_equal(fpi.sort("turn_id"), expected.select("turn_id", "failure_point").sort("turn_id"))
    labels = LabelModel.load(tmp_path).apply(logs)
    renamed = labels.rename({"pred_goal_success": "goal_success"})  # 0befa15 named the prediction as gold
    renamed = renamed.rename({c: f"label_{c}" for c in renamed.columns if c != "turn_id"})
    _frames_equal(renamed.sort("turn_id"), expected.drop("rewrite", "failure_point").sort("turn_id"))
