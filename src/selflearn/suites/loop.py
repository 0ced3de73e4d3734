"""Eval suite ``loop``: the daily cycle (simulate a day, learn overnight, swap artifacts) and its defect curve.

Metrics: ``defect_rate_day<N>`` for every day, ``defect_rate_day1``, ``defect_rate_last`` and ``relative_drop``
(day 1 to the last day, relative). Days differ in what people ask, so the same seeded days are also replayed with
nothing learned (the control): ``reduction_vs_control_last`` and ``reduction_vs_control_mean`` (days 2..N) are the
learning effect with the world's day-to-day variation taken out. ``teaching_*``: the same, with people also
teaching and answering feedback questions (the demo's setting).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from selflearn import evaluate
from selflearn.artifacts import ArtifactStore
from selflearn.loop import eval_world, progress, run_loop

QUICK = (12, 6)  # homes, days
FULL = (32, 14)


@evaluate.suite("loop")
def run(config: evaluate.EvalConfig) -> evaluate.EvalResult:
    n_homes, days = QUICK if config.quick else FULL
    homes, focus = eval_world(n_homes, config.seed, config.home)
    with tempfile.TemporaryDirectory(dir=config.work_dir) as tmp:
        control = run_loop(
            homes,
            days=days,
            seed=config.seed,
            artifacts=ArtifactStore(Path(tmp) / "control"),
            on_stage=lambda msg: progress(f"control (nothing learned): {msg}"),
            focus=focus,
            learning=False,
        )
        result = run_loop(
            homes,
            days=days,
            seed=config.seed,
            artifacts=ArtifactStore(Path(tmp) / "artifacts"),
            on_stage=progress,
            focus=focus,
        )
        taught = run_loop(
            homes,
            days=days,
            seed=config.seed,
            artifacts=ArtifactStore(Path(tmp) / "taught"),
            on_stage=lambda msg: progress(f"with teaching: {msg}"),
            focus=focus,
            teaching=True,
        )
    metrics = result.metrics(control.days)
    with_teaching = taught.metrics(control.days)
    for key in ("defect_rate_last", "reduction_vs_control_last", "reduction_vs_control_mean"):
        metrics[f"teaching_{key}"] = with_teaching[key]
    metrics |= {f"rewrite_rate_day{d.day}": d.rewrite_rate for d in result.days}
    baseline = {k: v for k, v in metrics.items() if k.startswith("control_")}
    return evaluate.EvalResult(n=sum(d.turns for d in result.days), metrics=metrics, baseline=baseline)
