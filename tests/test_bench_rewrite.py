"""The lookup bench's pieces: generated index vectors and the recall check of the approximate index."""

from __future__ import annotations

import random

import numpy as np

from selflearn.bench.rewrite import ann_recall, misspell, scaled_vectors
from selflearn.runtime.form_index import FormIndex, OnlineConfig
from selflearn.runtime.ranker import Rule


def _unit(rows: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, 384)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _index(vectors: np.ndarray, config: OnlineConfig) -> FormIndex:
    rules = [Rule(f"form {i}", f"fixed {i}", 0.9, 5, "global") for i in range(len(vectors))]
    return FormIndex(rules, vectors, config)


def test_scaled_vectors_are_unit_and_stay_near_their_base() -> None:
    base = _unit(10, 0)
    scaled = scaled_vectors(base, 50, np.random.default_rng(0))
    assert scaled.shape == (50, 384)
    np.testing.assert_allclose(np.linalg.norm(scaled, axis=1), 1.0, rtol=1e-5)
    assert float((scaled[13] @ base.T).argmax()) == 3


def test_recall_is_one_for_exact_search_and_drops_when_the_index_misses() -> None:
    vectors, queries = _unit(3000, 1), _unit(50, 2)
    assert ann_recall(_index(vectors, OnlineConfig()), vectors, queries, 8) == (1.0, 1.0)
    at_1, at_k = ann_recall(_index(vectors, OnlineConfig(flat_limit=100, nprobe=1)), vectors, queries, 8)
    assert at_k < 0.9 and at_1 < 1.0


def test_misspell_changes_one_word() -> None:
    rng = random.Random(0)
    for form in ("turn on the kitchen light", "set a timer for ten minutes"):
        bad = misspell(form, rng)
        assert bad != form
        assert sum(a != b for a, b in zip(bad.split(), form.split(), strict=True)) == 1


def test_load_bench_loads_the_same_rules_both_ways() -> None:
    from selflearn.bench.rewrite import bench_load
    from selflearn.home import shipped_homes
    from selflearn.runtime.encoder import Encoder

    load = bench_load(shipped_homes(), forms=20, seed=0, encoder=Encoder())
    assert load["forms"] == 20
    assert load["load_saved_index_s"] > 0 and load["load_encoding_s"] > 0
