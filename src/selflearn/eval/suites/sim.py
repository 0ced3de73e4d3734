"""Eval suite ``sim``: the simulated world's untrained defect rate and mix, its speed, and the ASR noise model
against the real recognizer it was calibrated on.

World metrics describe the simulated people (retries after a failure, barge-ins on defects vs right answers, the
share of failed wordings that failed for at least two users, simulated annotators' accuracy). ``asr_*`` metrics:
the model applied to the references of the held-out SLURP pairs (id % 5 == 0, not used for calibration);
``real_asr_*``: the real recognizer's output for the same recordings (also in ``baseline`` under the model's
names). ``sim_asr_wer`` is the word error rate inside the simulated homes (the model at the world's rate).
``wordings.*``: how long the tail of first wordings is; ``realistic.*``: the same homes, seed and days with
``SimConfig(phrasing="realistic")`` (defect mix and wordings), compared in the same run.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from dataclasses import replace

from selflearn.eval.harness import EvalConfig, EvalResult, suite
from selflearn.home import load_home
from selflearn.schema import Gold, Turn
from selflearn.sim import SimConfig, generate_homes
from selflearn.sim.asr import AsrModel, align, confidence_auc, load_pairs
from selflearn.sim.run import defect_stats, simulate, wording_stats

logger = logging.getLogger(__name__)


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
    logger.info(f"sim: {len(turns):,} turns in {seconds:.1f}s")
    metrics: dict[str, float] = {**defect_stats(gold), "turns_per_s": len(turns) / seconds}
    metrics.update(_world_stats(turns, gold))
    metrics.update(wording_stats(turns, gold))
    realistic = simulate(homes, days=days, seed=config.seed, config=replace(sim_config, phrasing="realistic"))
    r_gold = [g for log in realistic for g in log.gold]
    r_turns = [t for log in realistic for t in log.turns]
    r_stats = {**defect_stats(r_gold), **wording_stats(r_turns, r_gold)}
    metrics.update({f"realistic.{k}": v for k, v in r_stats.items()})
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


def _world_stats(turns: list[Turn], gold: list[Gold]) -> dict[str, float]:
    """How the simulated people behave: retries after a failure, barge-ins, failing wordings shared across users,
    and how often the simulated annotators agree with the truth."""
    truth = {g.turn_id: g for g in gold}
    failed = [t for t in turns if truth[t.turn_id].failure_point not in ("correct", "false_wake")]
    retried = {g.is_rephrase_of for g in gold if g.is_rephrase_of}
    users: dict[str, set[str]] = defaultdict(set)
    for t in failed:
        users[t.asr_text].add(t.user_id)
    defect = [t for t in turns if truth[t.turn_id].failure_point != "correct"]
    fine = [t for t in turns if truth[t.turn_id].failure_point == "correct"]
    out = {
        "retry_after_failure_rate": sum(t.turn_id in retried for t in failed) / max(len(failed), 1),
        "failed_wordings_shared_by_2plus_users": sum(len(users[t.asr_text]) >= 2 for t in failed) / max(len(failed), 1),
        "barge_in_rate.defect": sum(t.barge_in for t in defect) / max(len(defect), 1),
        "barge_in_rate.correct": sum(t.barge_in for t in fine) / max(len(fine), 1),
    }
    for who in ("single", "majority"):
        for label in ("goal_success", "failure_point"):
            hits = sum(g.annotator_labels[who][label] == getattr(g, label) for g in gold)
            out[f"annotator_{who}_{label}_accuracy"] = hits / max(len(gold), 1)
    return out
