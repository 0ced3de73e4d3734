"""``selflearn bench rewrite``: online lookup latency against index size, and the rewriter's share of a turn.

Indexed forms are generated: sentences sampled from the home-assistant-intents grammar over the shipped homes'
devices and areas, each with a misspelt "failing" variant as the rule's source. The first ``base`` forms are really
encoded; larger indexes (100k, 1M) reuse those vectors plus Gaussian jitter (re-normalised), because encoding a
million forms would take ~30 minutes and the online path never encodes the index anyway. Queries are (a) exact
hits on indexed forms (no encoding), (b) near variants ("please <form> now": encode + ANN search + transfer +
rerank, the full path) and (c) correct sentences no rule applies to (stopped by the anchor gate), timed one by one
with an empty encoder cache. The approximate index is checked against exact search over the same vectors on the near
queries (recall of the top-1 and of the top-k neighbours), so a faster index cannot hide a worse one. Last, the
time to load an artifact set in a fresh process: reading the index ``learn`` saved beside the table vs encoding.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from selflearn.home import Home
from selflearn.runtime.encoder import Encoder, Vectors
from selflearn.runtime.form_index import FormIndex, OnlineConfig, save_indexes
from selflearn.runtime.ranker import Rule
from selflearn.runtime.rewriter import OnlineRewriter
from selflearn.runtime.rewrites import REWRITE_SCHEMA, empty_table, write_tables
from selflearn.text import normalize

logger = logging.getLogger(__name__)


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
    """Per index size: exact hits (dict lookup), near variants (encode + ANN + transfer + rank: the full path) and
    pass-through utterances (correct sentences no rule applies to: the anchor gate)."""

    forms: int
    """Failing forms in the index."""
    build_seconds: float
    """Time to build the index, in seconds."""
    exact_p50_ms: float
    """Median latency of an exact hit, in ms."""
    exact_p99_ms: float
    """99th-percentile latency of an exact hit, in ms."""
    near_p50_ms: float
    """Median latency of a near variant (the full path), in ms."""
    near_p99_ms: float
    """99th-percentile latency of a near variant, in ms."""
    pass_p50_ms: float
    """Median latency of an utterance with no rewrite, in ms."""
    pass_p99_ms: float
    """99th-percentile latency of an utterance with no rewrite, in ms."""
    near_rewrite_rate: float
    """Share of near variants rewritten to their rule's target."""
    recall_at_1: float
    """The index's nearest form is the exact nearest (near queries)."""
    recall_at_k: float
    """Share of the exact k nearest forms the index returns."""
    cpu_exact_p99_ms: float
    """99th-percentile thread CPU time of an exact hit, in ms: what a lookup costs on a shared machine."""
    cpu_near_p50_ms: float
    """Median thread CPU time of a near variant, in ms."""
    cpu_near_p99_ms: float
    """99th-percentile thread CPU time of a near variant, in ms."""
    cpu_pass_p99_ms: float
    """99th-percentile thread CPU time of an utterance with no rewrite, in ms."""


def percentiles_ms(samples: Sequence[float]) -> tuple[float, float]:
    """Median and 99th percentile of ``samples`` (seconds), in ms."""
    p50, p99 = np.percentile(np.array(samples) * 1000.0, [50, 99])
    return float(p50), float(p99)


def ann_recall(index: FormIndex, vectors: Vectors, queries: Vectors, k: int) -> tuple[float, float]:
    """Recall@1 and recall@k of ``index.neighbours`` against exact inner-product search over ``vectors`` (the
    vectors the index holds, in the order of ``index.forms``)."""
    k = min(k, len(vectors))
    scores, ids = [], []
    for start in range(0, len(vectors), 100_000):
        block = queries @ vectors[start : start + 100_000].T
        top = np.argpartition(-block, min(k, block.shape[1]) - 1, axis=1)[:, :k]
        scores.append(np.take_along_axis(block, top, 1))
        ids.append(top + start)
    best, every = np.concatenate(scores, axis=1), np.concatenate(ids, axis=1)
    truth = np.take_along_axis(every, np.argsort(-best, axis=1)[:, :k], 1)
    at_1, at_k = [], []
    for query, exact in zip(queries, truth, strict=True):
        found = [form for form, _ in index.neighbours(query, k)]
        want = [index.forms[i] for i in exact]
        at_1.append(bool(found) and found[0] == want[0])
        at_k.append(len(set(found) & set(want)) / k)
    return float(np.mean(at_1)), float(np.mean(at_k))


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
) -> list[LookupRow]:
    rng = random.Random(seed)
    sentences = grammar_sentences(homes, base + queries, seed)
    base = min(base, len(sentences) - queries)
    indexed, held_out = sentences[:base], sentences[base : base + queries]
    sources = [misspell(s, rng) for s in indexed]
    logger.info(f"encoding {base} generated forms")
    base_vectors = encoder.encode(sources)
    home = homes[0]
    rows = []
    for size in sizes:
        logger.info(f"building an index of {size:,} forms")
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
        near_q = [f"please {rules[rng.randrange(min(size, base))].source} now" for _ in range(queries)]
        encoder.clear_cache()
        times: dict[str, list[float]] = {"exact": [], "near": [], "pass": []}
        cpu: dict[str, list[float]] = {"exact": [], "near": [], "pass": []}
        fired = 0
        for kind, batch in (("exact", exact_q), ("near", near_q), ("pass", held_out)):
            for q in batch:
                t0, c0 = time.perf_counter(), time.thread_time()
                hit = rewriter.best(q, user_id="bench", home=home)
                times[kind].append(time.perf_counter() - t0)
                cpu[kind].append(time.thread_time() - c0)
                fired += kind == "near" and hit is not None
        recall = ann_recall(rewriter.global_index, vectors, np.stack([encoder.encode_one(q) for q in near_q]), config.k)
        rows.append(
            LookupRow(
                size,
                build,
                *percentiles_ms(times["exact"]),
                *percentiles_ms(times["near"]),
                *percentiles_ms(times["pass"]),
                fired / len(near_q),
                *recall,
                percentiles_ms(cpu["exact"])[1],
                *percentiles_ms(cpu["near"]),
                percentiles_ms(cpu["pass"])[1],
            )
        )
        del rewriter, vectors, rules
    return rows


def bench_runtime(home: Home, *, utterances: int, seed: int, encoder: Encoder) -> dict[str, float]:
    """Per-utterance time of plain hassil ``recognize``, the runtime without a rewriter, and the runtime with the
    online rewriter over a table of this home's misspelt commands. A third of the utterances are exact failing forms,
    a third near variants (the full encode + search path), a third correct sentences no rule applies to."""
    from datetime import UTC, datetime, timedelta

    from selflearn.runtime.runtime import Runtime

    rng = random.Random(seed)
    sentences = grammar_sentences([home], 2 * utterances, seed)
    taught, fresh = sentences[:utterances], sentences[utterances:]
    rules = [Rule(misspell(s, rng), s, 0.9, 5, "global") for s in taught]
    forms = list(dict.fromkeys(r.source for r in rules))
    config = OnlineConfig()
    rewriter = OnlineRewriter.from_index(
        FormIndex(rules, encoder.encode(forms), config), config=config, encoder=encoder
    )
    texts = [(r.source, f"please {r.source}", fresh[i % len(fresh)])[i % 3] for i, r in enumerate(rules)]
    endpoint = home.endpoints[0]
    user = home.people[0].id if home.people else "bench"
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    plain, bare, rewriting = Runtime(home), Runtime(home), Runtime(home, rewriter=rewriter)
    wall: dict[str, list[float]] = {"hassil": [], "runtime": [], "runtime_rewrite": []}
    cpu: dict[str, list[float]] = {"hassil": [], "runtime": [], "runtime_rewrite": []}
    encoder.clear_cache()
    for i, text in enumerate(texts):
        now = start + timedelta(minutes=5 * i)
        calls: dict[str, Callable[[], object]] = {
            "hassil": partial(plain.nlu.first, text, area=endpoint.area),
            "runtime": partial(bare.interpret, text, user_id=user, endpoint_id=endpoint.id, now=now),
            "runtime_rewrite": partial(rewriting.interpret, text, user_id=user, endpoint_id=endpoint.id, now=now),
        }
        for name, call in calls.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            call()
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.thread_time() - c0)
    out: dict[str, float] = {"utterances": len(texts)}
    for clock, samples in (("", wall), ("cpu_", cpu)):
        mean = {k: 1000.0 * float(np.mean(v)) for k, v in samples.items()}
        out |= {f"{clock}{k}_ms": v for k, v in mean.items()}
        out[f"{clock}runtime_rewrite_p99_ms"] = 1000.0 * float(np.percentile(samples["runtime_rewrite"], 99))
        out[f"{clock}ratio_rewrite_vs_runtime"] = mean["runtime_rewrite"] / mean["runtime"]
        out[f"{clock}ratio_rewrite_vs_hassil"] = mean["runtime_rewrite"] / mean["hassil"]
    return out


def bench_load(homes: list[Home], *, forms: int, seed: int, encoder: Encoder) -> dict[str, float]:
    """Seconds for a process to load an artifact set of ``forms`` global rules (empty encoder cache): reading the
    index ``learn`` saved beside the table vs encoding every source form."""
    rng = random.Random(seed)
    rules = {misspell(t, rng): t for t in grammar_sentences(homes, forms, seed)}
    table = pl.DataFrame({"source": list(rules), "target": list(rules.values())}).with_columns(
        probability=0.9, support=5, distinct_users=5, source_intent=None, target_intent=None, layer=pl.lit("global")
    )

    def load_seconds(root: Path) -> float:
        encoder.clear_cache()
        start = time.perf_counter()
        OnlineRewriter.load(root, encoder=encoder)
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_tables(root, table.with_columns(user_id=None).cast(REWRITE_SCHEMA), empty_table())
        saved = save_indexes(root, encoder)
        with_index = load_seconds(root)
        for path in saved:
            path.unlink()
        encoding = load_seconds(root)
    return {
        "forms": float(len(rules)),
        "load_saved_index_s": with_index,
        "load_encoding_s": encoding,
        "ratio_saved_vs_encoding": with_index / encoding,
    }


def run_bench(
    sizes: list[int],
    *,
    queries: int,
    utterances: int,
    seed: int,
    load_forms: int = 2000,
) -> dict[str, Any]:
    from selflearn.home import shipped_homes

    homes = shipped_homes()
    encoder = Encoder()
    encoder.encode_one("warm up")
    lookup = bench_lookup(homes, sizes, queries=queries, seed=seed, base=min(10_000, max(sizes)), encoder=encoder)
    logger.info(f"runtime: {utterances} utterances, with and without rewriting")
    runtime = bench_runtime(homes[0], utterances=utterances, seed=seed, encoder=encoder)
    logger.info(f"loading an artifact set of {load_forms:,} rules: saved index vs encoding")
    load = bench_load(homes, forms=load_forms, seed=seed, encoder=encoder)
    return {
        "seed": seed,
        "encoder_threads": 1,
        "lookup": [asdict(r) for r in lookup],
        "runtime": runtime,
        "load": load,
    }
