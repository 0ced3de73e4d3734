"""Writes tests/data/expected_0befa15.parquet: what the code of commit 0befa15 does with the artifact set it
published (tests/data/artifacts_0befa15, from ``selflearn simulate --homes 6 --days 3 --seed 3`` and ``selflearn
learn --labels --rephrase-model --no-shadow`` on those logs, tests/data/logs_0befa15). Run it with 0befa15's
``src`` first on PYTHONPATH (``git archive 0befa15 src | tar -x -C OLD``); tests/test_base.py checks that the
current code, loading and re-saving that set, does the same."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from selflearn.home import load_home
from selflearn.learners.fpi import FpiModel
from selflearn.learners.labels.learner import LabelModel
from selflearn.runtime.rewriter import OnlineRewriter
from selflearn.store.logview import LogView

DATA = Path(__file__).parent
SET = DATA / "artifacts_0befa15"
LOGS = DATA / "logs_0befa15"


def main() -> None:
    turns = pl.read_parquet(LOGS / "turns.parquet")
    logs = LogView(turns.to_arrow(), pl.read_parquet(LOGS / "feedback.parquet").to_arrow())
    homes = {h.id: h for h in (load_home(f) for f in sorted((LOGS / "homes").glob("*.yaml")))}
    rewriter = OnlineRewriter.load(SET)
    rewrites = []
    for text, user, home in turns.select("asr_text", "user_id", "home_id").iter_rows():
        best = rewriter.best(text or "", user_id=user, home=homes[home])
        rewrites.append(None if best is None else best.text)
    fpi = FpiModel.load(SET / "fpi").apply(logs)
    labels = LabelModel.load(SET / "labels").apply(logs)
    out = turns.select("turn_id").with_columns(rewrite=pl.Series(rewrites, dtype=pl.String))
    out = out.join(fpi.select("turn_id", "failure_point"), on="turn_id", how="left")
    keep = [c for c in labels.columns if c != "turn_id"]
    out = out.join(labels.select("turn_id", *keep).rename({c: f"label_{c}" for c in keep}), on="turn_id", how="left")
    out.write_parquet(DATA / "expected_0befa15.parquet")


if __name__ == "__main__":
    main()
