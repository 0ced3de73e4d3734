"""Suite ``context``: does context pick the right reading where the words alone are ambiguous?

Cases come from the scenario library (``pipeline.scenarios``) instantiated on the shipped homes, or on ``--home``.
Each case runs through the full runtime twice: with context (``accuracy``) and with the same NLU and context
switched off (``baseline.accuracy``). A case is right when the top reading has the expected intent and slots and
acts on exactly the expected devices. The ``explicit_words_win`` control cases (the words decide) are in the
overall accuracy; ``accuracy_ambiguous`` leaves them out. ``accuracy_asr_noise`` runs every case again on what a
recognizer calibrated on real SLURP errors would have heard (``pipeline.asr``), with and without context.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections import defaultdict

from selflearn import progress
from selflearn.eval import harness as evaluate
from selflearn.home import load_home, shipped_homes
from selflearn.sim.asr import AsrConfig, AsrModel
from selflearn.sim.scenarios import Case, cases

logger = logging.getLogger(__name__)

MIN_CASES = 500
MIN_CASES_QUICK = 120
MAX_ROUNDS = 100
ASR_RATE = 1.0  # the SLURP-calibrated recognizer's error level (~19 % WER on SLURP)
CONTROLS = frozenset({"explicit_words_win"})  # the words decide; context must not change the answer


def generate(homes: list, seed: int, minimum: int) -> list[Case]:
    """Rounds of every scenario on every home until there are at least ``minimum`` cases."""
    rng = random.Random(seed)
    out: list[Case] = []
    for _ in range(MAX_ROUNDS):
        for home in homes:
            out.extend(cases(home, rng, per_scenario=1))
        if len(out) >= minimum:
            break
    return out


@evaluate.suite("context")
def run(config: evaluate.EvalConfig) -> evaluate.EvalResult:
    homes = [load_home(config.home)] if config.home else shipped_homes()
    todo = generate(homes, config.seed, MIN_CASES_QUICK if config.quick else MIN_CASES)
    if not todo:
        raise ValueError("no context scenario fits this home (it needs endpoints and some devices)")
    right: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    asr = AsrModel(AsrConfig(rate=ASR_RATE))
    rng = random.Random(config.seed)
    heard = [0, 0]
    for i, case in enumerate(progress.track(todo, "context: cases")):
        tally = right[case.scenario]
        tally[0] += case.correct(case.run(context=True))
        tally[1] += case.correct(case.run(context=False))
        tally[2] += 1
        noisy = dataclasses.replace(case, text=asr.transcribe(case.text, rng).text)
        heard[0] += noisy.correct(noisy.run(context=True))
        heard[1] += noisy.correct(noisy.run(context=False))
        if i % 100 == 0:
            logger.debug(f"context: {i}/{len(todo)} cases")
    n = len(todo)
    metrics: dict[str, float | int] = {"accuracy": sum(t[0] for t in right.values()) / n}
    baseline: dict[str, float | int] = {"accuracy": sum(t[1] for t in right.values()) / n}
    for name, (ok, base, count) in sorted(right.items()):
        metrics[f"accuracy.{name}"] = ok / count
        baseline[f"accuracy.{name}"] = base / count
        metrics[f"n.{name}"] = count
    ambiguous = [t for name, t in right.items() if name not in CONTROLS]
    n_ambiguous = sum(t[2] for t in ambiguous)
    metrics["accuracy_ambiguous"] = sum(t[0] for t in ambiguous) / max(1, n_ambiguous)
    baseline["accuracy_ambiguous"] = sum(t[1] for t in ambiguous) / max(1, n_ambiguous)
    metrics["accuracy_asr_noise"] = heard[0] / n
    baseline["accuracy_asr_noise"] = heard[1] / n
    metrics["gain_points"] = 100 * (metrics["accuracy"] - baseline["accuracy"])
    metrics["homes"] = len(homes)
    return evaluate.EvalResult(n=n, metrics=metrics, baseline=baseline)
