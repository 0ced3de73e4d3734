"""``selflearn bench learn``: throughput of the non-neural learning path (signals + rephrase chains + absorbing
chain + guardrails) on generated logs, against a row-by-row Python baseline of the same chain counting measured in
the same run (on a slice, so the baseline's run stays short; rates are per turn). With ``finetune_pairs`` it also
times fine-tuning the retrieval encoder (``rewrite.finetune``) on that many pairs mined from the same turns."""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from typing import Any

import polars as pl
from rapidfuzz import fuzz

from selflearn.learners.mining import MiningConfig, RewriteMiner, baseline_rephrase, chains
from selflearn.learners.signals import NO_RESULT_STATUSES, DefectSignals
from selflearn.sim.synthlogs import SynthConfig, generate
from selflearn.text import normalize

logger = logging.getLogger(__name__)


def python_chain_counts(turns: pl.DataFrame, config: MiningConfig) -> Counter[tuple[str, str]]:
    """The baseline: sort, walk each user's turns in Python, link failures to quick similar follow-ups, count
    (failing form, form the chain ended in) for chains that end in a success. Same rules as the vectorised path for
    these generated logs (no meta turns, no feedback), minus the per-form signal component."""
    rows = sorted(turns.select("user_id", "ts", "turn_id", "asr_text", "result_status", "barge_in").iter_rows())
    by_user: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in rows:
        by_user[row[0]].append(row)
    counts: Counter[tuple[str, str]] = Counter()
    for user_rows in by_user.values():
        chain: list[str] = []
        for i, (_, ts, _, text, status, barge) in enumerate(user_rows):
            form = normalize(text)
            failed = status in NO_RESULT_STATUSES or barge
            nxt = user_rows[i + 1] if i + 1 < len(user_rows) else None
            if not failed:
                for source in chain:
                    if source != form:
                        counts[(source, form)] += 1
                chain = []
                continue
            chain.append(form)
            linked = (
                nxt is not None
                and (nxt[1] - ts).total_seconds() <= config.pair_window_s
                and fuzz.token_set_ratio(form, normalize(nxt[3])) / 100.0 >= config.similarity_min
            )
            if not linked:
                chain = []
    return counts


def learn_bench(
    n_turns: int,
    *,
    seed: int = 0,
    baseline_turns: int = 100_000,
    finetune_pairs: int = 0,
) -> dict:
    config = MiningConfig()
    logger.info(f"generating {n_turns:,} turns")
    turns, _ = generate(n_turns, seed=seed, config=SynthConfig(n_users=max(50, n_turns // 500), days=7))
    logger.info("mining (vectorised)")
    start = time.perf_counter()
    scored = DefectSignals(config.signals).score_frame(turns)
    signals_s = time.perf_counter() - start
    tables = RewriteMiner(config).fit_frame(scored)
    total_s = time.perf_counter() - start

    sample = turns.head(min(baseline_turns, turns.height))
    logger.info(f"baseline: row-by-row Python on {sample.height:,} turns")
    start = time.perf_counter()
    slow = python_chain_counts(sample, config)
    baseline_s = time.perf_counter() - start
    fast_sample = DefectSignals(config.signals).score_frame(sample)
    ch = chains(fast_sample, baseline_rephrase(fast_sample, config))
    repaired = pl.col("target_form").is_not_null() & (pl.col("form") != pl.col("target_form"))
    fast = ch.filter(repaired).group_by("form", "target_form")
    fast_counts = {(r[0], r[1]): r[2] for r in fast.len().iter_rows()}
    keys = set(fast_counts) | set(slow)
    overlap = sum(min(fast_counts.get(k, 0), slow[k]) for k in slow)
    agreement = overlap / max(sum(max(fast_counts.get(k, 0), slow.get(k, 0)) for k in keys), 1)

    rate = turns.height / total_s * 60.0
    baseline_rate = sample.height / baseline_s * 60.0
    return {
        "turns": turns.height,
        "seconds": round(total_s, 3),
        "signals_seconds": round(signals_s, 3),
        "turns_per_min": rate,
        "baseline_turns": sample.height,
        "baseline_seconds": round(baseline_s, 3),
        "baseline_turns_per_min": baseline_rate,
        "ratio_vs_baseline": rate / baseline_rate,
        "chain_count_agreement": agreement,  # weighted Jaccard of (source, target) counts
        "global_rewrites": tables.global_table.height,
        "personal_rewrites": tables.personal_table.height,
        **(finetune_bench(scored, finetune_pairs, seed=seed) if finetune_pairs else {}),
    }


def finetune_bench(scored: pl.DataFrame, n_pairs: int, *, seed: int) -> dict[str, Any]:
    """Fine-tuning time on ``n_pairs`` mined pairs (sampled; the tuner trains once on each distinct one), one epoch,
    no time cap; the export to the runtime's int8 graph timed apart. ``finetune_seconds_per_100k_pairs`` scales the
    measured rate per mined pair (so it holds for logs as repetitive as these)."""
    from selflearn.learners.finetune import EncoderTuner, TuneConfig, pairs_from_scored

    pairs = pairs_from_scored(scored)
    if pairs.height == 0:
        return {"finetune_pairs": 0}
    pairs = pairs.sample(n_pairs, with_replacement=pairs.height < n_pairs, seed=seed)
    logger.info(f"fine-tuning the encoder on {pairs.height:,} mined pairs")
    config = TuneConfig(max_pairs=pairs.height, max_seconds=float("inf"), seed=seed)
    start = time.perf_counter()
    tuned = EncoderTuner(config).fit_pairs(pairs)
    meta = tuned.meta
    per_pair = meta["train_seconds"] / max(pairs.height, 1)
    return {
        "finetune_pairs": pairs.height,
        "finetune_trained_pairs": meta["pairs"],
        "finetune_steps": meta["steps"],
        "finetune_train_seconds": meta["train_seconds"],
        "finetune_export_seconds": meta["export_seconds"],
        "finetune_seconds": round(time.perf_counter() - start, 2),
        "finetune_pairs_per_s": 1.0 / per_pair if per_pair else 0.0,
        "finetune_seconds_per_100k_pairs": round(per_pair * 100_000 + meta["export_seconds"], 1),
        "finetune_first_loss": meta["first_loss"],
        "finetune_last_loss": meta["last_loss"],
    }
