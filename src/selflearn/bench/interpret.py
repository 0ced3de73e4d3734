"""Speed of the full runtime against plain hassil ``recognize`` on the same utterances, measured in the same run.

Utterances: hassil's own samples of every intent with each home's names (what users say most: device commands)
plus the context scenarios' utterances. For every utterance both paths run interleaved, so load on the machine hits
both alike; the report gives median and p99 per-utterance times and their ratios. The NLU remembers parses of
repeated utterances, so the headline ("cold") times clear that memo before every run; "warm" is a repeat. The
runtime's NLU hands hassil only the templates that can match (``prefilter.py``), so it beats plain hassil; the
``indexed_*`` keys compare it with that indexed ``recognize`` call alone (what the other stages add). The
``retrieval_*`` keys time the same pipeline with retrieval over what works (``rewrite/retrieval.py``, day-0 index
built before timing) for the utterances it fails on, cold (parse memo and encoder cache cleared).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from hassil import recognize, sample_intents

from selflearn.home import Home
from selflearn.runtime.nlu import prefilter
from selflearn.runtime.runtime import Runtime
from selflearn.sim.scenarios import at, cases


@dataclass(frozen=True)
class Utterance:
    home: Home
    """The home it is said in."""
    text: str
    """What is said."""
    endpoint_id: str
    """The endpoint it is said to."""


def utterances(homes: Sequence[Home], *, per_intent: int, seed: int) -> list[Utterance]:
    rng = random.Random(seed)
    out: list[Utterance] = []
    for home in homes:
        rt = Runtime(home)
        samples = sample_intents(
            rt.nlu.intents, slot_lists=rt.nlu.slot_lists, max_sentences_per_intent=per_intent, language="en"
        )
        for _intent, text in samples:
            out.append(Utterance(home, text, rng.choice(home.endpoints).id))
        out.extend(Utterance(home, c.text, c.endpoint_id) for c in cases(home, rng, per_scenario=1))
    return out


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(homes: Sequence[Home], *, per_intent: int = 8, repeats: int = 3, seed: int = 0) -> dict[str, float]:
    """Per-utterance best-of-``repeats`` times (ms) for plain hassil and the full pipeline (cold and warm memo)."""
    todo = utterances(homes, per_intent=per_intent, seed=seed)
    from selflearn.runtime.encoder import shared_encoder
    from selflearn.runtime.retrieval import Retrieval

    runtimes = {h.id: Runtime(h) for h in homes}
    retrieval = Retrieval()
    retrieving = {h.id: Runtime(h, retriever=retrieval) for h in homes}
    for h in homes:
        retrieval.index(h)
    encoder = shared_encoder()
    plain: list[float] = []
    with_retrieval: list[float] = []
    fired = 0
    indexed: list[float] = []
    full: list[float] = []
    warm: list[float] = []
    for u in todo:
        rt = runtimes[u.home.id]
        area = u.home.endpoint(u.endpoint_id).area
        now = at(u.home, 12)
        best_plain = best_indexed = best_full = best_warm = best_retrieval = float("inf")
        context = {"area": area} if area else None
        for _ in range(repeats):
            t = time.perf_counter()
            rt.nlu.first(u.text, area=area)
            best_plain = min(best_plain, time.perf_counter() - t)
            t = time.perf_counter()
            recognize(
                u.text, prefilter().prune(u.text), slot_lists=rt.nlu.slot_lists, intent_context=context, language="en"
            )
            best_indexed = min(best_indexed, time.perf_counter() - t)
            rt.nlu.clear_memo()
            t = time.perf_counter()
            rt.interpret(u.text, user_id="bench", endpoint_id=u.endpoint_id, now=now)
            best_full = min(best_full, time.perf_counter() - t)
            t = time.perf_counter()
            rt.interpret(u.text, user_id="bench", endpoint_id=u.endpoint_id, now=now)
            best_warm = min(best_warm, time.perf_counter() - t)
            rt.nlu.clear_memo()
            encoder.clear_cache()
            t = time.perf_counter()
            done = retrieving[u.home.id].interpret(u.text, user_id="bench", endpoint_id=u.endpoint_id, now=now)
            best_retrieval = min(best_retrieval, time.perf_counter() - t)
        fired += "retrieval" in done.stages
        with_retrieval.append(best_retrieval * 1000)
        plain.append(best_plain * 1000)
        indexed.append(best_indexed * 1000)
        full.append(best_full * 1000)
        warm.append(best_warm * 1000)
    return {
        "utterances": len(todo),
        "hassil_median_ms": statistics.median(plain),
        "hassil_p99_ms": _p(plain, 0.99),
        "pipeline_median_ms": statistics.median(full),
        "pipeline_p99_ms": _p(full, 0.99),
        "ratio_median": statistics.median(full) / statistics.median(plain),
        "ratio_p99": _p(full, 0.99) / _p(plain, 0.99),
        "ratio_median_per_utterance": statistics.median(f / p for f, p in zip(full, plain, strict=True)),
        "indexed_hassil_median_ms": statistics.median(indexed),
        "indexed_hassil_p99_ms": _p(indexed, 0.99),
        "ratio_median_vs_indexed": statistics.median(full) / statistics.median(indexed),
        "ratio_p99_vs_indexed": _p(full, 0.99) / _p(indexed, 0.99),
        "warm_pipeline_median_ms": statistics.median(warm),
        "warm_ratio_median": statistics.median(warm) / statistics.median(plain),
        "retrieval_median_ms": statistics.median(with_retrieval),
        "retrieval_p99_ms": _p(with_retrieval, 0.99),
        "retrieval_ratio_p99": _p(with_retrieval, 0.99) / _p(plain, 0.99),
        "retrieval_asked": fired,  # utterances the NLU failed on or barely understood
    }
