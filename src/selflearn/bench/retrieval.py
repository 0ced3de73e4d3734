"""``selflearn bench rewrite``'s retrieval rows: the runtime's fallback lookup (encode + ANN + rank) by index size.

Retrieval over what works (``rewrite/retrieval.py``) keeps one index per home: about a thousand entries on day 0,
growing with what works there. To time the lookup at 10k to 1M entries, the shipped homes' day-0 entries (really
rendered, dry-run and encoded; read from the index cache when built before) are the base, and larger indexes cycle
them with Gaussian-jittered vectors (``rewrite.bench.scaled_vectors``), as the rule lookup bench does. Queries are
the requests retrieval serves, failing wordings of the home's commands (a misspelt word, "please ... now"), each
new to the encoder's cache, so every lookup encodes. Each is timed as the runtime calls it (``Retrieval.best``:
encode, faiss search, features and ranker over the k nearest), wall and thread CPU, one query at a time; the
encoding alone is timed on the same queries after the cache is cleared again, so the rest is search and ranking.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from selflearn.bench.rewrite import misspell, percentiles_ms, scaled_vectors
from selflearn.home import Home
from selflearn.runtime.encoder import Encoder
from selflearn.runtime.known_commands import Entry
from selflearn.runtime.retrieval import HomeIndex, Retrieval

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrievalRow:
    """One index size's lookup times (ms) for failing requests, as the runtime asks retrieval."""

    entries: int
    """Entries in the home's index."""
    build_seconds: float
    """Building the faiss index over them (IVF training and adding at 1M)."""
    p50_ms: float
    """Wall time of ``Retrieval.best``: encode + search + rank."""
    p99_ms: float
    """Its 99th percentile."""
    cpu_p50_ms: float
    """The calling thread's CPU time (what the lookup costs when the machine is shared)."""
    cpu_p99_ms: float
    """Its 99th percentile."""
    encode_p50_ms: float
    """The encoding alone, wall (same queries, empty cache)."""
    encode_p99_ms: float
    """Its 99th percentile."""
    accepted_rate: float
    """Share of queries the ranker rewrote (the rest abstained)."""


def bench_retrieval(
    homes: Sequence[Home],
    sizes: Sequence[int],
    *,
    queries: int,
    seed: int,
    encoder: Encoder,
) -> list[RetrievalRow]:
    """Lookup times at each index size, for the first home's failing requests over the shipped homes' entries."""
    base = Retrieval(encoder=encoder)
    entries: list[Entry] = []
    parts = []
    for home in homes:
        logger.info(f"retrieval: the day-0 index of {home.id} (built once, then read from the index cache)")
        index = base.index(home)
        entries += index.entries
        parts.append(encoder.encode([e.match for e in index.entries]))
    vectors = np.concatenate(parts)
    home = homes[0]
    rng = random.Random(seed)
    own = base.index(home).entries
    texts = list(dict.fromkeys(f"please {misspell(rng.choice(own).text, rng)} now" for _ in range(3 * queries)))
    texts = texts[:queries]
    now = datetime(2026, 1, 5, 18, tzinfo=UTC)
    user = home.people[0].id if home.people else "bench"
    rows = []
    for size in sizes:
        logger.info(f"retrieval: an index of {size:,} entries")
        start = time.perf_counter()
        scaled = vectors[:size] if size <= len(vectors) else scaled_vectors(vectors, size, np.random.default_rng(seed))
        retrieval = Retrieval(encoder=encoder, config=base.config, cache=base.cache)
        retrieval.use(HomeIndex(home, [entries[i % len(entries)] for i in range(size)], encoder, base.config, scaled))
        build = time.perf_counter() - start
        wall, cpu, encode = [], [], []
        accepted = 0
        encoder.clear_cache()
        for text in texts:
            t0, c0 = time.perf_counter(), time.thread_time()
            found = retrieval.best(text, user_id=user, home=home, now=now)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
            accepted += found is not None
        encoder.clear_cache()
        for text in texts:
            t0 = time.perf_counter()
            encoder.encode_one(text)
            encode.append(time.perf_counter() - t0)
        times = (*percentiles_ms(wall), *percentiles_ms(cpu), *percentiles_ms(encode))
        rows.append(RetrievalRow(size, build, *times, accepted / len(texts)))
        del retrieval, scaled
    return rows


def run(sizes: Sequence[int], *, queries: int, seed: int) -> list[dict[str, float]]:
    """The retrieval rows of ``bench rewrite`` over the shipped homes (one encoder thread, as the runtime)."""
    from dataclasses import asdict

    from selflearn.home import shipped_homes

    encoder = Encoder()
    encoder.encode_one("warm up")
    rows = bench_retrieval(shipped_homes(), sizes, queries=queries, seed=seed, encoder=encoder)
    return [asdict(r) for r in rows]
