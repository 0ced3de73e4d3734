"""Eval suite ``loop``: the daily cycle (simulate a day, learn overnight, swap artifacts) and its defect curve.

Metrics: ``defect_rate_day<N>`` for every day, ``defect_rate_day1``, ``defect_rate_last`` and ``relative_drop``
(day 1 to the last day, relative). Days differ in what people ask, so the same seeded days are also replayed with
nothing learned (the control): ``reduction_vs_control_last`` and ``reduction_vs_control_mean`` (days 2..N) are the
learning effect with the world's day-to-day variation taken out. ``teaching_*``: the same, with people also
teaching and answering feedback questions (the demo's setting).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
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
    arms = {  # name: (progress label, learning, teaching)
        "control": ("control (nothing learned): ", False, False),
        "learned": ("", True, False),
        "taught": ("with teaching: ", True, True),
    }
    runs = {}
    with tempfile.TemporaryDirectory(dir=config.work_dir) as tmp:
        for name, (label, learning, teaching) in arms.items():
            runs[name] = run_loop(
                homes,
                days=days,
                seed=config.seed,
                artifacts=ArtifactStore(Path(tmp) / name),
                on_stage=_prefixed(label),
                focus=focus,
                learning=learning,
                teaching=teaching,
            )
    control, result, taught = runs["control"], runs["learned"], runs["taught"]
    metrics = result.metrics(control.days)
    with_teaching = taught.metrics(control.days)
    for key in ("defect_rate_last", "reduction_vs_control_last", "reduction_vs_control_mean"):
        metrics[f"teaching_{key}"] = with_teaching[key]
    metrics |= {f"rewrite_rate_day{d.day}": d.rewrite_rate for d in result.days}
    baseline = {k: v for k, v in metrics.items() if k.startswith("control_")}
    return evaluate.EvalResult(n=sum(d.turns for d in result.days), metrics=metrics, baseline=baseline)


def _prefixed(label: str) -> Callable[[str], None]:
    return lambda msg: progress(f"{label}{msg}")
