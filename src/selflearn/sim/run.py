"""Running many simulated home-days, on several processes, and summarising what the untrained assistant got wrong.

Homes are independent (each home-day has its own random stream, users depend only on seed and home), so a run
split over processes by home gives exactly the records of a single-process run, merged back in home order.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING

from selflearn import gold as gold_metrics
from selflearn.home import Home
from selflearn.runtime.nlu import prefilter
from selflearn.runtime.rewrites import Retriever
from selflearn.schema import Feedback, Gold, Turn, write_parquet
from selflearn.sim.asr import default_calibration
from selflearn.sim.simulation import DayLog, SimConfig, Simulation
from selflearn.text import normalize

if TYPE_CHECKING:
    from selflearn.store.logstore import Store


def _some_homes(homes: Sequence[Home], seed: int, config: SimConfig, days: int, retrieval: bool) -> list[DayLog]:
    sim = Simulation(homes, seed=seed, config=config)
    retriever = _day0_retrieval() if retrieval else None
    return [sim.run_day(d, retriever=retriever) for d in range(days)]


def _day0_retrieval() -> Retriever:
    """Retrieval over each home's own commands with the day-0 ranker: the untrained runtime of ``interpret``."""
    from selflearn.runtime.retrieval import Retrieval

    return Retrieval()


def simulate(
    homes: Sequence[Home],
    *,
    days: int,
    seed: int,
    config: SimConfig = SimConfig(),
    workers: int = 1,
    on_home_day: Callable[[int], None] | None = None,
    retrieval: bool = False,
) -> list[DayLog]:
    """One :class:`DayLog` per day for the untrained assistant. ``on_home_day(n)`` reports n finished home-days.
    ``retrieval``: its runtime falls back on retrieval over each home's own commands (the day-0 index, read from the
    index cache once built), as ``interpret`` does with nothing learned; the suites leave it out.
    With ``workers`` > 1 the homes are dealt round-robin to that many processes (one simulation each, so the
    per-process start-up is paid once)."""
    if workers <= 1 or len(homes) < 2:
        sim = Simulation(homes, seed=seed, config=config)
        progress = (lambda _h: on_home_day(1)) if on_home_day else None
        retriever = _day0_retrieval() if retrieval else None
        return [sim.run_day(d, on_home=progress, retriever=retriever) for d in range(days)]
    default_calibration()  # built once here: forked workers inherit it and the compiled, indexed templates
    prefilter()
    chunks = [list(range(i, len(homes), workers)) for i in range(min(workers, len(homes)))]
    per_chunk: list[list[DayLog]] = [[] for _ in chunks]
    gc.freeze()  # the workers' garbage collector then leaves inherited objects alone (no copy-on-write of the heap)
    try:
        with ProcessPoolExecutor(max_workers=len(chunks)) as pool:
            futures = {
                pool.submit(_some_homes, [homes[i] for i in c], seed, config, days, retrieval): k
                for k, c in enumerate(chunks)
            }
            for fut in as_completed(futures):
                k = futures[fut]
                per_chunk[k] = fut.result()
                if on_home_day is not None:
                    on_home_day(days * len(chunks[k]))
    finally:
        gc.unfreeze()
    merged = []
    for d in range(days):
        by_home = {h.id: DayLog() for h in homes}
        for chunk_logs in per_chunk:
            for t in chunk_logs[d].turns:
                by_home[t.home_id].turns.append(t)
            gold_home = {t.turn_id: t.home_id for t in chunk_logs[d].turns}
            for g in chunk_logs[d].gold:
                by_home[gold_home[g.turn_id]].gold.append(g)
            for f in chunk_logs[d].feedback:
                by_home[gold_home[f.turn_id]].feedback.append(f)
        log = DayLog()
        for h in homes:
            log.extend(by_home[h.id])
        merged.append(log)
    return merged


def defect_stats(gold: Sequence[Gold]) -> dict[str, float]:
    """Turn defect rate (any failure point but ``correct``), its split by failure point (shares of all turns),
    and the goal success rate (``selflearn.gold``)."""
    stats = {"turns": float(len(gold)), "defect_rate": gold_metrics.defect_rate(gold)}
    stats |= {f"defect_rate_by_failure_point.{p}": v for p, v in gold_metrics.failure_points(gold).items()}
    stats["goal_success_rate"] = gold_metrics.goal_success_rate(gold)
    return stats


def wording_stats(turns: Sequence[Turn], gold: Sequence[Gold]) -> dict[str, float]:
    """How long the tail of first wordings is (what was said first for a request, from gold): distinct wordings
    per intent, the share of distinct wordings said by at most two people, and the share of first attempts
    that use such a rare wording."""
    speaker = {t.turn_id: t.user_id for t in turns}
    people: dict[str, set[str]] = defaultdict(set)
    per_intent: dict[str, set[str]] = defaultdict(set)
    firsts = []
    for g in gold:
        if g.true_intent is None or g.is_rephrase_of is not None:
            continue
        form = normalize(g.true_text)
        people[form].add(speaker[g.turn_id])
        per_intent[g.true_intent].add(form)
        firsts.append(form)
    rare = {form for form, who in people.items() if len(who) <= 2}
    return {
        "wordings.first_attempts": float(len(firsts)),
        "wordings.distinct": float(len(people)),
        "wordings.distinct_per_intent": len(people) and sum(map(len, per_intent.values())) / len(per_intent),
        "wordings.said_by_le2_people_share": len(rare) / max(len(people), 1),
        "wordings.first_attempts_rare_share": sum(f in rare for f in firsts) / max(len(firsts), 1),
    }


def add_log(store: Store, log: DayLog) -> None:
    """Add one simulated day (turns, gold, feedback) to the log store (gold into its own table)."""
    store.add(turns=log.turns, gold=log.gold, feedback=log.feedback)


def record(logs: Sequence[DayLog], db: Path | None, *, store: bool = True) -> dict[str, float]:
    """Add the simulated logs to the store at ``db`` (None: the default one) unless not ``store``, and return the
    gold ``defect_stats`` of them all (``selflearn simulate``)."""
    if store:
        from selflearn.store.logstore import Store

        with Store(db) as opened:
            for log in logs:
                add_log(opened, log)
    return defect_stats([g for log in logs for g in log.gold])


def write_logs(logs: Sequence[DayLog], out: Path) -> dict[str, Path]:
    """All days into ``out/turns.parquet``, ``gold.parquet``, ``feedback.parquet``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"turns": out / "turns.parquet", "gold": out / "gold.parquet", "feedback": out / "feedback.parquet"}
    write_parquet([t for log in logs for t in log.turns], paths["turns"], Turn)
    write_parquet([g for log in logs for g in log.gold], paths["gold"], Gold)
    write_parquet([f for log in logs for f in log.feedback], paths["feedback"], Feedback)
    return paths
