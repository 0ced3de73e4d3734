"""``selflearn bench rewrite``: online lookup latency against index size, and the rewriter's share of a turn.

Indexed forms are generated: sentences sampled from the home-assistant-intents grammar over the shipped homes'
devices and areas, each with a misspelt "failing" variant as the rule's source. The first ``base`` forms are really
encoded; larger indexes (100k, 1M) reuse those vectors plus Gaussian jitter (re-normalised), because encoding a
million forms would take ~30 minutes and the online path never encodes the index anyway. Queries are (a) exact
hits on indexed forms (no encoding) and (b) unseen variants (encode + ANN search + rerank), timed one by one with
an empty encoder cache.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from selflearn.home import Home
from selflearn.rewrite.encoder import Encoder, Vectors
from selflearn.rewrite.online import FormIndex, OnlineConfig, OnlineRewriter, Rule
from selflearn.text import normalize


def grammar_sentences(homes: list[Home], limit: int, seed: int) -> list[str]:
    """Distinct normalised sentences the NLU grammar accepts for these homes (deterministic for a seed)."""
    from hassil import Intents, SlotList, TextSlotList, sample_intents
    from home_assistant_intents import get_intents

    intents = Intents.from_dict(get_intents("en") or {})
    slot_lists: dict[str, SlotList] = {
        "area": TextSlotList.from_strings(sorted({a.name for h in homes for a in h.areas})),
        "floor": TextSlotList.from_strings(sorted({a.floor for h in homes for a in h.areas if a.floor})),
        "name": TextSlotList.from_tuples(
            [(n, d.id, {"domain": d.domain}) for h in homes for d in h.devices for n in d.names]
        ),
    }
    sentences = sorted(
        {
            normalize(s)
            for _, s in sample_intents(intents, slot_lists=slot_lists, max_sentences_per_intent=1000, language="en")
        }
    )
    random.Random(seed).shuffle(sentences)
    return sentences[:limit]


def misspell(form: str, rng: random.Random) -> str:
    """A plausible failing variant: one word with a dropped, doubled or swapped letter."""
    words = form.split()
    i = rng.randrange(len(words))
    w = words[i]
    if len(w) > 3:
        j = rng.randrange(1, len(w) - 1)
        op = rng.randrange(3)
        w = (
            w[:j] + w[j + 1 :]
            if op == 0
            else w[:j] + w[j] + w[j:]
            if op == 1
            else w[: j - 1] + w[j] + w[j - 1] + w[j + 1 :]
        )
    else:
        w = w + w[-1]
    words[i] = w
    return " ".join(words)


@dataclass(frozen=True)
class LookupRow:
    forms: int
    build_seconds: float
    exact_p50_ms: float
    exact_p99_ms: float
    miss_p50_ms: float
    miss_p99_ms: float
    rewrite_rate_misses: float


def _percentiles(samples: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.array(samples) * 1000.0, [50, 99])
    return float(p50), float(p99)


def scaled_vectors(base: Vectors, n: int, rng: np.random.Generator, jitter: float = 0.03) -> Vectors:
    """``n`` unit vectors clustered like the real ones: base vectors cycled, plus Gaussian jitter, re-normalised."""
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        idx = np.arange(start, min(n, start + step)) % len(base)
        block = base[idx] + rng.normal(scale=jitter, size=(len(idx), base.shape[1])).astype(np.float32)
        out[start : start + len(idx)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def bench_lookup(
    homes: list[Home],
    sizes: list[int],
    *,
    queries: int,
    seed: int,
    base: int,
    encoder: Encoder,
    progress: Callable[[str], None],
) -> list[LookupRow]:
    rng = random.Random(seed)
    sentences = grammar_sentences(homes, base + queries, seed)
    base = min(base, len(sentences) - queries)
    indexed, held_out = sentences[:base], sentences[base : base + queries]
    sources = [misspell(s, rng) for s in indexed]
    progress(f"encoding {base} generated forms")
    base_vectors = encoder.encode(sources)
    home = homes[0]
    rows = []
    for size in sizes:
        progress(f"building an index of {size:,} forms")
        start = time.perf_counter()
        vectors = (
            base_vectors[:size] if size <= base else scaled_vectors(base_vectors, size, np.random.default_rng(seed))
        )
        rules = [
            Rule(sources[i % base] if i < base else f"{sources[i % base]} {i}", indexed[i % base], 0.9, 5, "global")
            for i in range(size)
        ]
        config = OnlineConfig()
        rewriter = OnlineRewriter.from_index(FormIndex(rules, vectors, config), config=config, encoder=encoder)
        build = time.perf_counter() - start
        exact_q = [rules[rng.randrange(min(size, base))].source for _ in range(queries)]
        miss_q = [misspell(s, rng) for s in held_out]
        exact, miss, fired = [], [], 0
        for q in exact_q:
            t0 = time.perf_counter()
            rewriter.best(q, user_id="bench", home=home)
            exact.append(time.perf_counter() - t0)
        encoder.clear_cache()
        for q in miss_q:
            t0 = time.perf_counter()
            fired += rewriter.best(q, user_id="bench", home=home) is not None
            miss.append(time.perf_counter() - t0)
        rows.append(LookupRow(size, build, *_percentiles(exact), *_percentiles(miss), fired / len(miss_q)))
        del rewriter, vectors, rules
    return rows


def bench_runtime(home: Home, *, utterances: int, seed: int, encoder: Encoder) -> dict[str, float]:
    """Per-utterance time of plain hassil ``recognize``, the runtime without a rewriter, and the runtime with the
    online rewriter over a table of this home's misspelt commands; half the utterances are misspelt (rewritable)."""
    from datetime import UTC, datetime, timedelta

    from selflearn.pipeline.runtime import Runtime

    rng = random.Random(seed)
    sentences = grammar_sentences([home], 2 * utterances, seed)
    taught, fresh = sentences[:utterances], sentences[utterances:]
    rules = [Rule(misspell(s, rng), s, 0.9, 5, "global") for s in taught]
    forms = list(dict.fromkeys(r.source for r in rules))
    config = OnlineConfig()
    rewriter = OnlineRewriter.from_index(
        FormIndex(rules, encoder.encode(forms), config), config=config, encoder=encoder
    )
    texts = [r.source if i % 2 else fresh[i % len(fresh)] for i, r in enumerate(rules)]
    endpoint = home.endpoints[0]
    user = home.people[0].id if home.people else "bench"
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    plain, bare, rewriting = Runtime(home), Runtime(home), Runtime(home, rewriter=rewriter)
    times: dict[str, list[float]] = {"hassil": [], "runtime": [], "runtime_rewrite": []}
    encoder.clear_cache()
    for i, text in enumerate(texts):
        now = start + timedelta(minutes=5 * i)
        t0 = time.perf_counter()
        plain.nlu.first(text, area=endpoint.area)
        t1 = time.perf_counter()
        bare.interpret(text, user_id=user, endpoint_id=endpoint.id, now=now)
        t2 = time.perf_counter()
        rewriting.interpret(text, user_id=user, endpoint_id=endpoint.id, now=now)
        t3 = time.perf_counter()
        times["hassil"].append(t1 - t0)
        times["runtime"].append(t2 - t1)
        times["runtime_rewrite"].append(t3 - t2)
    mean = {k: 1000.0 * float(np.mean(v)) for k, v in times.items()}
    return {
        "utterances": len(texts),
        "hassil_ms": mean["hassil"],
        "runtime_ms": mean["runtime"],
        "runtime_rewrite_ms": mean["runtime_rewrite"],
        "runtime_rewrite_p99_ms": 1000.0 * float(np.percentile(times["runtime_rewrite"], 99)),
        "ratio_rewrite_vs_runtime": mean["runtime_rewrite"] / mean["runtime"],
        "ratio_rewrite_vs_hassil": mean["runtime_rewrite"] / mean["hassil"],
    }


def run_bench(
    sizes: list[int], *, queries: int, utterances: int, seed: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    from selflearn.home import shipped_homes

    homes = shipped_homes()
    encoder = Encoder()
    encoder.encode_one("warm up")
    lookup = bench_lookup(
        homes, sizes, queries=queries, seed=seed, base=min(10_000, max(sizes)), encoder=encoder, progress=progress
    )
    progress(f"runtime: {utterances} utterances, with and without rewriting")
    runtime = bench_runtime(homes[0], utterances=utterances, seed=seed, encoder=encoder)
    return {"seed": seed, "encoder_threads": 1, "lookup": [asdict(r) for r in lookup], "runtime": runtime}
