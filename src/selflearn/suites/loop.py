"""Eval suite ``loop``: the daily cycle (simulate a day, learn overnight, swap artifacts) and its defect curve.

Metrics: ``defect_rate_day<N>`` for every day, ``defect_rate_day1``, ``defect_rate_last`` and ``relative_drop``
(day 1 to the last day, relative). Day 1 runs with no artifacts, so it is the no-learning baseline.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from selflearn import evaluate
from selflearn.artifacts import ArtifactStore
from selflearn.loop import eval_world, progress, run_loop

QUICK = (4, 3)  # homes, days
FULL = (8, 7)


@evaluate.suite("loop")
def run(config: evaluate.EvalConfig) -> evaluate.EvalResult:
    n_homes, days = QUICK if config.quick else FULL
    homes, focus = eval_world(n_homes, config.seed, config.home)
    with tempfile.TemporaryDirectory(dir=config.work_dir) as tmp:
        result = run_loop(
            homes,
            days=days,
            seed=config.seed,
            artifacts=ArtifactStore(Path(tmp) / "artifacts"),
            on_stage=progress,
            focus=focus,
        )
    metrics = result.metrics()
    metrics |= {f"rewrite_rate_day{d.day}": d.rewrite_rate for d in result.days}
    return evaluate.EvalResult(
        n=sum(d.turns for d in result.days), metrics=metrics, baseline={"defect_rate_day1": metrics["defect_rate_day1"]}
    )
