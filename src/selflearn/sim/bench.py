"""``selflearn bench simulate``: simulated turns per minute, against the runtime alone on the same utterances.

The baseline replays every logged ``asr_text`` through a fresh runtime of its home, with no simulation around it:
the ratio says how much the simulator adds (ASR model, users, judging, the ASR replay of failed turns). Every
timing starts with the NLU's parse memo cleared; within a run it warms up as people repeat themselves. On a shared
machine other processes take cores, so each run also reports the cores it kept busy (CPU seconds of this process and
its workers over wall seconds): a 2-process run that kept ~1 core busy was starved, not serial.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable

from selflearn.home import Home
from selflearn.pipeline.runtime import Runtime
from selflearn.sim.homes import generate_homes
from selflearn.sim.run import simulate


def bench_simulate(
    *, homes: int, days: int, workers: int, seed: int, log: Callable[[str], None] = lambda _: None
) -> dict[str, float | int]:
    world = generate_homes(homes, seed)
    simulate(world[:1], days=1, seed=seed)  # warm caches (templates, calibration) outside the timings
    _cold(world)  # also builds every home's runtime parts once, as the runtime-only baseline gets them too
    start, cpu = time.perf_counter(), _cpu()
    logs = simulate(world, days=days, seed=seed)
    one = time.perf_counter() - start
    cores_one = (_cpu() - cpu) / one
    turns = [t for day in logs for t in day.turns]
    log(f"1 process: {len(turns):,} turns in {one:.1f}s")
    _cold(world)
    start, cpu = time.perf_counter(), _cpu()
    simulate(world, days=days, seed=seed, workers=workers)
    many = time.perf_counter() - start
    cores_many = (_cpu() - cpu) / many
    log(f"{workers} processes: {many:.1f}s")
    by_home = {h.id: h for h in world}
    _cold(world)
    runtimes = {h.id: Runtime(h) for h in world}
    start = time.perf_counter()
    for t in turns:
        runtimes[t.home_id].interpret(t.asr_text, user_id=t.user_id, endpoint_id=t.device_id, now=t.ts)
    base = time.perf_counter() - start
    log(f"runtime alone on the same {len(turns):,} utterances: {base:.1f}s ({len(by_home)} homes)")
    n = len(turns)
    return {
        "turns": n,
        "turns_per_min_1proc": 60.0 * n / one,
        f"turns_per_min_{workers}proc": 60.0 * n / many,
        "cores_busy_1proc": round(cores_one, 2),
        f"cores_busy_{workers}proc": round(cores_many, 2),
        "runtime_only_turns_per_min": 60.0 * n / base,
        "sim_overhead_ratio": one / base,
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
