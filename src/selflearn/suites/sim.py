"""Eval suite ``sim``: the simulated world's untrained defect rate and mix, its speed, and the ASR noise model
against the real recognizer it was calibrated on.

``asr_*`` metrics: the model applied to the references of the held-out SLURP pairs (id % 5 == 0, not used for
calibration); ``real_asr_*``: the real recognizer's output for the same recordings (also in ``baseline`` under the
model's names). ``sim_asr_wer`` is the word error rate inside the simulated homes (the model at the world's rate).
"""

from __future__ import annotations

import random
import sys
import time

from selflearn.evaluate import EvalConfig, EvalResult, suite
from selflearn.home import load_home
from selflearn.pipeline.asr import AsrModel, align, confidence_auc, load_pairs
from selflearn.sim import SimConfig, generate_homes
from selflearn.sim.run import defect_stats, simulate


@suite("sim")
def run(config: EvalConfig) -> EvalResult:
    homes = [load_home(config.home)] if config.home else generate_homes(4 if config.quick else 24, config.seed)
    days = 1 if config.quick else 2
    sim_config = SimConfig()
    start = time.perf_counter()
    logs = simulate(homes, days=days, seed=config.seed, config=sim_config)
    seconds = time.perf_counter() - start
    gold = [g for log in logs for g in log.gold]
    turns = [t for log in logs for t in log.turns]
    print(f"sim: {len(turns):,} turns in {seconds:.1f}s", file=sys.stderr)
    metrics: dict[str, float] = {**defect_stats(gold), "turns_per_s": len(turns) / seconds}
    truth = {g.turn_id: g for g in gold}
    asked = [(truth[t.turn_id].true_text, t.asr_text) for t in turns if truth[t.turn_id].true_intent]
    metrics["sim_asr_wer"] = align([a for a, _ in asked], [b for _, b in asked], [frozenset()] * len(asked)).wer

    pairs = load_pairs("test")
    if config.quick:
        pairs = pairs[:600]
    refs, names = [p.ref for p in pairs], [p.names for p in pairs]
    model, rng = AsrModel(), random.Random(config.seed)
    heard = [model.transcribe(p.ref, rng, names=p.names) for p in pairs]
    simulated = align(refs, [h.text for h in heard], names).metrics("asr_")
    real = align(refs, [p.hyp for p in pairs], names).metrics("asr_")
    metrics.update(simulated)
    metrics.update({f"real_{k}": v for k, v in real.items()})
    metrics["asr_confidence_auc"] = confidence_auc([h.confidence for h in heard], [h.errors > 0 for h in heard])
    metrics["asr_pairs"] = len(pairs)
    return EvalResult(n=len(turns), metrics=metrics, baseline=real)
