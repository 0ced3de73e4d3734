"""``selflearn bench simulate``: simulated turns per minute, against the runtime alone on the same utterances.

The baseline replays every logged ``asr_text`` through a fresh runtime of its home, with no simulation around it:
the ratio says how much the simulator adds (ASR model, users, judging, the ASR replay of failed turns). Every
timing starts with the NLU's parse memo cleared; within a run it warms up as people repeat themselves. On a shared
machine other processes take cores, so each run also reports the cores it kept busy (CPU seconds of this process and
its workers over wall seconds): a 2-process run that kept ~1 core busy was starved, not serial.
"""

from __future__ import annotations

import logging
import resource
import time

from selflearn.home import Home
from selflearn.runtime.runtime import Runtime
from selflearn.sim.homes import generate_homes
from selflearn.sim.run import simulate

logger = logging.getLogger(__name__)


def bench_simulate(*, homes: int, days: int, workers: int, seed: int, repeats: int = 3) -> dict[str, float | int]:
    """Each mode is timed ``repeats`` times, interleaved, and its fastest run kept (load from other processes only
    ever slows a run down)."""
    world = generate_homes(homes, seed)
    simulate(world[:1], days=1, seed=seed)  # warm caches (templates, calibration) outside the timings
    _cold(world)  # also builds every home's runtime parts once, as the runtime-only baseline gets them too
    turns = [t for day in simulate(world, days=days, seed=seed) for t in day.turns]
    n = len(turns)
    best: dict[str, tuple[float, float]] = {}  # mode -> (wall seconds, CPU seconds) of its fastest run
    for r in range(repeats):
        for mode in ("1proc", f"{workers}proc", "runtime"):
            _cold(world)
            runtimes = {h.id: Runtime(h) for h in world}
            start, cpu = time.perf_counter(), _cpu()
            if mode == "runtime":
                for t in turns:
                    runtimes[t.home_id].interpret(t.asr_text, user_id=t.user_id, endpoint_id=t.device_id, now=t.ts)
            else:
                simulate(world, days=days, seed=seed, workers=1 if mode == "1proc" else workers)
            took = (time.perf_counter() - start, _cpu() - cpu)
            if mode not in best or took[0] < best[mode][0]:
                best[mode] = took
            logger.info(
                f"run {r + 1}/{repeats}, {mode}: {n:,} turns in {took[0]:.2f}s ({took[1] / took[0]:.2f} cores busy)"
            )
    one, many, base = best["1proc"], best[f"{workers}proc"], best["runtime"]
    return {
        "turns": n,
        "repeats": repeats,
        "turns_per_min_1proc": 60.0 * n / one[0],
        f"turns_per_min_{workers}proc": 60.0 * n / many[0],
        "cores_busy_1proc": round(one[1] / one[0], 2),
        f"cores_busy_{workers}proc": round(many[1] / many[0], 2),
        "turns_per_cpu_min": 60.0 * n / one[1],  # what one free core does, whatever the load
        "runtime_only_turns_per_min": 60.0 * n / base[0],
        "sim_overhead_ratio": one[0] / base[0],
        "target_turns_per_min": 50_000,
    }


def _cpu() -> float:
    """CPU seconds of this process and of its finished worker processes."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def _cold(world: list[Home]) -> None:
    """Forget the NLU's remembered parses of every home, so that each timing starts cold (and forked workers do
    not inherit a warm memo). Per-home set-up (slot lists, name indexes) stays built: it is paid once per home and
    process, not per turn."""
    for home in world:
        Runtime(home).nlu.clear_memo()
