"""Corrupted dialogues for swap-contrastive pretraining: a turn's utterance, response or slot swapped for another's."""

from __future__ import annotations

import numpy as np

from selflearn.learners.labels.features import (
    Batchable,
)


class Negatives:
    """Corrupted (utterance, response) pairs for pretraining, drawn from turns that look alike (same NLU intent or
    domain) so that telling them from real pairs needs the words, not just the status or the kind of request."""

    KINDS = ("random", "intent", "domain", "utterance")

    def __init__(self, data: Batchable, kinds: tuple[str, ...]):
        unknown = set(kinds) - set(self.KINDS)
        if unknown or not kinds:
            raise ValueError(f"unknown pretraining negatives {sorted(unknown)}; choose from {self.KINDS}")
        self.kinds = tuple(kinds)
        self.width = data.mask.shape[1]
        self.utter = data.utter.ravel()
        self.resp = data.resp.ravel()
        real = np.flatnonzero(data.mask.ravel())
        self.groups = {
            "random": np.zeros(data.mask.size, dtype=np.int64),
            "intent": data.cat[..., 1].ravel(),
            "utterance": data.cat[..., 1].ravel(),
            "domain": data.cat[..., 0].ravel(),
        }
        self.sorted: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for kind in set(self.kinds):
            key = self.groups[kind][real]
            order = np.argsort(key, kind="stable")
            values, starts, counts = np.unique(key[order], return_index=True, return_counts=True)
            lo = np.zeros(int(self.groups[kind].max()) + 1, dtype=np.int64)
            n = np.zeros_like(lo)
            lo[values], n[values] = starts, counts
            self.sorted[kind] = (real[order], lo, n)

    def _draw(self, kind: str, flat: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Flat index of a random real turn in the same group as each of ``flat``."""
        members, lo, n = self.sorted[kind]
        key = self.groups[kind][flat]
        return members[lo[key] + (rng.random(len(flat)) * n[key]).astype(np.int64)]

    def corrupt(self, rows: np.ndarray, swap: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(utterance, response) index grids for dialogues ``rows`` with the ``swap`` positions corrupted."""
        flat = (rows[:, None] * self.width + np.arange(swap.shape[1])[None, :]).ravel()
        utter, resp = self.utter[flat].copy(), self.resp[flat].copy()
        where = np.flatnonzero(swap.ravel())
        kind = rng.integers(len(self.kinds), size=len(where))
        for k, name in enumerate(self.kinds):
            at = where[kind == k]
            other = self._draw(name, flat[at], rng)
            if name == "utterance":
                utter[at] = self.utter[other]
            else:
                resp[at] = self.resp[other]
        return utter.reshape(swap.shape), resp.reshape(swap.shape)
