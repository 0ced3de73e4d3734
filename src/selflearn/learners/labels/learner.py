"""Train and apply the label model: contrastive pretraining, then multi-task fine-tuning on weak labels.

Pretraining needs no labels at all: half of the turns get a response swapped in from another dialogue and the model
learns to tell real (utterance, response) pairs from swapped ones — a synthetic defect — which teaches it what a
fitting answer looks like. Fine-tuning then fits four heads to the weak labels of ``features.turn_table``. The
artifact labels every turn with a goal segmentation, goal success (with a confidence), intent and slots; turns whose
confidence is under the operating threshold are left unlabelled (precision vs throughput, see ``docs/labels.md``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import torch
from rapidfuzz import fuzz
from torch.nn import functional as F

from selflearn.learners.base import Artifact, Evidence, Logs
from selflearn.learners.labels.encoder import TextEncoder, default_encoder
from selflearn.learners.labels.features import (
    NO_INTENT,
    NUMERIC,
    STATUSES,
    UNKNOWN,
    Batchable,
    Vocab,
    build_vocab,
    pad_dialogues,
    turn_table,
)
from selflearn.learners.labels.model import DialogueLabeler, ModelShape
from selflearn.learners.labels.negatives import Negatives

LABELS_DIR = Path("labels")


WEIGHTS_FILE = "labels.pt"


META_FILE = "labels.json"


SPAN_MIN_SCORE = 80.0


@dataclass(frozen=True)
class LabelConfig:
    d_model: int = 64
    """Width of the dialogue transformer."""
    layers: int = 2
    """Transformer layers."""
    heads: int = 4
    """Attention heads per layer."""
    max_turns: int = 16
    """Turns of a dialogue the model reads (longer dialogues are cut)."""
    pretrain_epochs: int = 2
    """Epochs of contrastive swap pretraining."""
    finetune_epochs: int = 4
    """Epochs of fine-tuning on the weak labels."""
    min_steps: int = 400
    """Per stage: small logs get more epochs so the model sees enough updates."""
    finetune_share: float = 1.0
    """Fine-tune on this share of dialogues (pretraining always sees them all)."""
    intent_dropout: float = 0.3
    """Hide the NLU intent input this often in fine-tuning, so text carries intent too."""
    batch_size: int = 128
    """Dialogues per training step."""
    lr: float = 2e-3
    """AdamW learning rate."""
    swap_rate: float = 0.5
    """Share of turns whose response is swapped for a negative in pretraining."""
    # pretraining negatives, one kind drawn per swapped turn: "random" (a response from any turn), "intent" / "domain"
    # (a response from a turn with the same NLU intent / domain: hard), "utterance" (the utterance of another turn
    # with the same NLU intent, as a misrecognition would give)
    negatives: tuple[str, ...] = ("random",)
    """Kinds of pretraining negatives, one drawn per swapped turn (see the comment above)."""
    # a never-understood, never-achieved turn is labelled with the intent of the most similar successful utterance
    # when their MiniLM cosine similarity reaches this (else "<none>"); tuned on seed 7
    intent_guess_similarity: float = 0.5
    """Cosine similarity needed to label a failed turn with a successful utterance's intent."""
    pretrain: bool = True
    """Run swap pretraining before fine-tuning (False: the ablation)."""
    threshold: float = 0.8
    """Default operating point: label a turn when goal-success confidence >= this."""
    threads: int = 1
    """torch intra-op threads; 1 is fastest for this small model on a shared 2-core box."""
    seed: int = 0
    """Seed of initialisation, sampling and dropout."""


def _texts(table: pl.DataFrame) -> list[str]:
    return sorted(set(table["text"].to_list()) | set(table["response_text"].fill_null("").to_list()))


def _embed(table: pl.DataFrame, encoder: TextEncoder) -> tuple[torch.Tensor, dict[str, int]]:
    texts = _texts(table)
    return torch.from_numpy(encoder.encode(texts)), {t: i for i, t in enumerate(texts)}


def guess_intents(
    table: pl.DataFrame, emb: torch.Tensor, text_index: dict[str, int], min_similarity: float
) -> pl.DataFrame:
    """Weak intent for turns the NLU never understood in a goal that never succeeded (``w_intent_unsure``): the
    intent of the most similar utterance that did succeed, if close enough, so "quieter please" learns
    HassSetVolumeRelative instead of "no request"; chatter far from every request keeps "<none>"."""
    anchors = table.filter(
        (pl.col("result_status") == "success") & pl.col("w_success") & ~pl.col("w_intent").is_in([NO_INTENT, UNKNOWN])
    )
    unsure = table["w_intent_unsure"].to_numpy()
    if not anchors.height or not unsure.any():
        return table
    by_text = anchors.group_by("text").agg(pl.col("w_intent").mode().sort().first()).sort("text")
    anchor_vecs = emb[[text_index[t] for t in by_text["text"].to_list()]]
    queries = sorted(set(table.filter(pl.col("w_intent_unsure"))["text"].to_list()))
    sims = emb[[text_index[t] for t in queries]] @ anchor_vecs.T
    best, at = sims.max(dim=1)
    names = by_text["w_intent"].to_list()
    pairs = zip(queries, best.tolist(), at.tolist(), strict=True)
    guess = {q: names[int(i)] for q, s, i in pairs if s >= min_similarity}
    guessed = pl.Series([guess.get(t) for t in table["text"].to_list()], dtype=pl.String)
    return table.with_columns(
        w_intent=pl.when(pl.col("w_intent_unsure") & guessed.is_not_null()).then(guessed).otherwise(pl.col("w_intent"))
    )


def _tensors(b: Batchable, rows: np.ndarray) -> dict[str, torch.Tensor]:
    out = {
        "utter": torch.from_numpy(b.utter[rows]),
        "resp": torch.from_numpy(b.resp[rows]),
        "cat": torch.from_numpy(b.cat[rows]),
        "num": torch.from_numpy(b.num[rows]),
        "mask": torch.from_numpy(b.mask[rows]),
    }
    out.update({k: torch.from_numpy(v[rows]) for k, v in b.targets.items()})
    return out


def _forward(model: DialogueLabeler, emb: torch.Tensor, t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return model(emb[t["utter"]], emb[t["resp"]], t["cat"], t["num"], t["mask"])


def _multitask_loss(out: dict[str, torch.Tensor], t: dict[str, torch.Tensor]) -> torch.Tensor:
    mask = t["mask"]
    loss = F.binary_cross_entropy_with_logits(out["boundary"][mask], t["boundary"][mask])
    loss = loss + F.binary_cross_entropy_with_logits(out["success"][mask], t["success"][mask])
    intent_y = t["intent"].masked_fill(~mask, -100)
    if (intent_y >= 0).any():
        loss = loss + F.cross_entropy(out["intent"].flatten(0, 1), intent_y.flatten(), ignore_index=-100)
    known = t["slots_known"] & mask
    if known.any() and t["slots"].shape[-1]:
        loss = loss + F.binary_cross_entropy_with_logits(out["slots"][known], t["slots"][known])
    return loss


@dataclass
class History:
    pretrain_loss: list[float] = field(default_factory=list)
    """Mean pretraining loss per epoch."""
    pretrain_swap_accuracy: list[float] = field(default_factory=list)
    """Share of swaps detected per pretraining epoch."""
    finetune_loss: list[float] = field(default_factory=list)
    """Mean fine-tuning loss per epoch."""
    seconds: float = 0.0
    """Wall-clock training time, in seconds."""
    dialogues: int = 0
    """Dialogues trained on."""
    turns: int = 0
    """Turns trained on."""
    texts: int = 0
    """Distinct utterance and response texts embedded."""


class LabelLearner:
    """``LabelLearner(config).fit(logs) -> LabelModel``; reads turns (and optional defect signals), never gold.

    ``pretrained``: the weights right after pretraining of an earlier fit on the same logs
    (``LabelModel.pretrained``); fine-tuning starts from them instead of pretraining again, so a learning curve
    over fine-tuning shares pretrains once.
    """

    def __init__(
        self,
        config: LabelConfig | None = None,
        encoder: TextEncoder | None = None,
        pretrained: dict[str, torch.Tensor] | None = None,
    ):
        self.config = config or LabelConfig()
        self.encoder = encoder
        self.pretrained = pretrained

    name: ClassVar[str] = "labels"
    """The learner's name in ``LearnConfig.learners`` and in the learn report."""

    def fit(self, logs: Logs, signals: pl.DataFrame | None = None) -> LabelModel:
        """Pretrain and fine-tune on ``logs`` (``signals``: the scored turns, by default those of ``Evidence``)."""
        start = time.perf_counter()
        signals = _signals(logs, signals)
        cfg = self.config
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(cfg.threads)
        rng = np.random.default_rng(cfg.seed)
        encoder = self.encoder or default_encoder()
        table = turn_table(logs.turns(), signals)
        vocab = build_vocab(table)
        emb, text_index = _embed(table, encoder)
        table = guess_intents(table, emb, text_index, cfg.intent_guess_similarity)
        data = pad_dialogues(table, vocab, text_index, max_turns=cfg.max_turns)
        shape = ModelShape(
            text_dim=encoder.dim,
            n_domains=len(vocab.domains),
            n_intents=len(vocab.intents),
            n_statuses=len(STATUSES),
            n_numeric=len(NUMERIC),
            n_slots=len(vocab.slots),
            d_model=cfg.d_model,
            layers=cfg.layers,
            heads=cfg.heads,
            max_turns=cfg.max_turns,
        )
        model = DialogueLabeler(shape)
        history = History(dialogues=len(data.dialogue_ids), turns=int(data.mask.sum()), texts=len(text_index))
        pretrained = None
        if cfg.pretrain and self.pretrained is not None:
            model.load_state_dict(self.pretrained)
            pretrained = self.pretrained
        elif cfg.pretrain:
            self._pretrain(model, emb, data, rng, history)
            pretrained = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._finetune(model, emb, data, rng, history)
        history.seconds = time.perf_counter() - start
        model.eval()
        return LabelModel(model, vocab, cfg, history, encoder, pretrained)

    def _epochs(self, epochs: int, n: int) -> int:
        if epochs == 0:
            return 0
        per_epoch = max(1, -(-n // self.config.batch_size))
        return max(epochs, -(-self.config.min_steps // per_epoch))

    def _batches(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        order = rng.permutation(n)
        return [order[i : i + self.config.batch_size] for i in range(0, n, self.config.batch_size)]

    def _pretrain(
        self, model: DialogueLabeler, emb: torch.Tensor, data: Batchable, rng: np.random.Generator, h: History
    ) -> None:
        negatives = Negatives(data, self.config.negatives)
        opt = torch.optim.AdamW(model.parameters(), lr=self.config.lr)
        model.train()
        for _ in range(self._epochs(self.config.pretrain_epochs, len(data.dialogue_ids))):
            losses, correct, total = [], 0, 0
            for rows in self._batches(len(data.dialogue_ids), rng):
                t = _tensors(data, rows)
                mask = t["mask"]
                swap = (rng.random(mask.shape) < self.config.swap_rate) & mask.numpy()
                utter, resp = (torch.from_numpy(x) for x in negatives.corrupt(rows, swap, rng))
                target = ((resp != t["resp"]) | (utter != t["utter"])).float()
                out = model(emb[utter], emb[resp], t["cat"], t["num"], mask)
                loss = F.binary_cross_entropy_with_logits(out["swap"][mask], target[mask])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
                correct += int(((out["swap"][mask] > 0).float() == target[mask]).sum())
                total += int(mask.sum())
            h.pretrain_loss.append(float(np.mean(losses)))
            h.pretrain_swap_accuracy.append(correct / max(1, total))

    def _finetune(
        self, model: DialogueLabeler, emb: torch.Tensor, data: Batchable, rng: np.random.Generator, h: History
    ) -> None:
        opt = torch.optim.AdamW(model.parameters(), lr=self.config.lr)
        model.train()
        n = len(data.dialogue_ids)
        subset = rng.permutation(n)[: max(1, round(n * self.config.finetune_share))]
        for _ in range(self._epochs(self.config.finetune_epochs, len(subset))):
            losses = []
            for rows in self._batches(len(subset), rng):
                t = _tensors(data, subset[rows])
                hide = torch.rand(t["mask"].shape) < self.config.intent_dropout
                t["cat"] = t["cat"].clone()
                t["cat"][..., 1] = t["cat"][..., 1].masked_fill(hide, 0)
                loss = _multitask_loss(_forward(model, emb, t), t)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            h.finetune_loss.append(float(np.mean(losses)))


def _span(text: str, value: str) -> list[int] | None:
    """Character span of a slot value in the utterance (fuzzy: ASR may have garbled it), or None."""
    if not value or not text:
        return None
    found = fuzz.partial_ratio_alignment(value.lower(), text)
    if found is None or found.score < SPAN_MIN_SCORE:
        return None
    return [found.dest_start, found.dest_end]


def _signals(logs: Logs, signals: pl.DataFrame | None) -> pl.DataFrame | None:
    """The scored turns to use: those given, else those of a run's ``Evidence`` (None: none)."""
    return signals if signals is not None or not isinstance(logs, Evidence) else logs.scored


class LabelModel(Artifact):
    """The trained labeler. ``apply(logs)`` -> one row of labels per turn."""

    marker: ClassVar[Path] = LABELS_DIR / WEIGHTS_FILE
    """The file whose presence in an artifact set means this artifact is there (``find``)."""

    def __init__(
        self,
        model: DialogueLabeler,
        vocab: Vocab,
        config: LabelConfig,
        history: History | None = None,
        encoder: TextEncoder | None = None,
        pretrained: dict[str, torch.Tensor] | None = None,
    ):
        self.model = model
        self.vocab = vocab
        self.config = config
        self.history = history or History()
        self.encoder = encoder
        self.pretrained = pretrained  # weights after pretraining, before fine-tuning (in memory only, not saved)

    def predict_table(self, table: pl.DataFrame, *, batch_size: int = 512) -> pl.DataFrame:
        """Raw head outputs per turn: boundary and success probabilities, intent, slot-name probabilities."""
        encoder = self.encoder or default_encoder()
        self.encoder = encoder
        emb, text_index = _embed(table, encoder)
        data = pad_dialogues(table, self.vocab, text_index, max_turns=self.config.max_turns)
        rows: dict[str, list[np.ndarray]] = {"turn_id": [], "boundary": [], "success": [], "intent": [], "slots": []}
        self.model.eval()
        with torch.inference_mode():
            for i in range(0, len(data.dialogue_ids), batch_size):
                idx = np.arange(i, min(i + batch_size, len(data.dialogue_ids)))
                t = _tensors(data, idx)
                out = _forward(self.model, emb, t)
                mask = t["mask"]
                intent_logits = out["intent"][mask]
                intent_logits[:, 0] = -torch.inf  # never predict <unk>
                understood = t["cat"][..., 1][mask] != 1  # the NLU found an intent: a request, not <none>
                intent_logits[understood, 1] = -torch.inf
                rows["turn_id"].append(data.turn_ids[idx][mask.numpy()])
                rows["boundary"].append(torch.sigmoid(out["boundary"][mask]).numpy())
                rows["success"].append(torch.sigmoid(out["success"][mask]).numpy())
                rows["intent"].append(intent_logits.argmax(-1).numpy())
                rows["slots"].append(torch.sigmoid(out["slots"][mask]).numpy())
        cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in rows.items()}
        intents = np.array(self.vocab.intents, dtype=object)[cat["intent"].astype(int)] if len(cat["intent"]) else []
        slot_probs = cat["slots"] if len(cat["turn_id"]) else np.zeros((0, max(1, len(self.vocab.slots))))
        return pl.DataFrame(
            {
                "turn_id": cat["turn_id"].astype(str),
                "p_boundary": cat["boundary"].astype(np.float32),
                "p_success": cat["success"].astype(np.float32),
                "intent": [None if i in (NO_INTENT, UNKNOWN) else i for i in intents],
                "slot_probs": slot_probs.astype(np.float32).tolist(),
            },
            schema={
                "turn_id": pl.String,
                "p_boundary": pl.Float32,
                "p_success": pl.Float32,
                "intent": pl.String,
                "slot_probs": pl.List(pl.Float32),
            },
        )

    def label_table(self, table: pl.DataFrame, *, threshold: float | None = None) -> pl.DataFrame:
        """Final labels: goal segments (``goal_start``, ``goal``), goal success averaged over each predicted goal,
        its confidence, ``labelled`` (confidence >= threshold), intent, slots and their character spans."""
        threshold = self.config.threshold if threshold is None else threshold
        heads = self.predict_table(table)
        df = table.select("turn_id", "dialogue_id", "pos", "text", "nlu_slots", "result_status").join(
            heads, on="turn_id", how="inner"
        )
        df = df.sort(["dialogue_id", "pos"]).with_columns(
            goal_start=(pl.col("pos") == 0) | (pl.col("p_boundary") >= 0.5)
        )
        df = df.with_columns(goal=pl.col("goal_start").cast(pl.Int32).cum_sum().over("dialogue_id") - 1)
        df = df.with_columns(p_goal_success=pl.col("p_success").mean().over(["dialogue_id", "goal"]))
        df = df.with_columns(
            pred_goal_success=pl.col("p_goal_success") >= 0.5,
            confidence=pl.max_horizontal(pl.col("p_goal_success"), 1.0 - pl.col("p_goal_success")),
        ).with_columns(labelled=pl.col("confidence") >= threshold)
        slots, spans = self._slots(df)
        return df.select(
            "turn_id",
            "dialogue_id",
            "goal_start",
            "goal",
            "pred_goal_success",
            "p_goal_success",
            "confidence",
            "labelled",
            "intent",
            slots=pl.Series(slots, dtype=pl.String),
            slot_spans=pl.Series(spans, dtype=pl.String),
        )

    def _slots(self, df: pl.DataFrame) -> tuple[list[str], list[str]]:
        """Slot names from the slot head; values from the NLU on the goal's latest turn that has them."""
        names = self.vocab.slots
        keys = df["dialogue_id"].to_list()
        goals = df["goal"].to_list()
        nlu = [json.loads(s or "{}") for s in df["nlu_slots"].to_list()]
        ok = [s == "success" for s in df["result_status"].to_list()]
        source: dict[tuple[str, int, str], str] = {}
        for i, (d, g) in enumerate(zip(keys, goals, strict=True)):
            for name, value in nlu[i].items():
                if ok[i] or (d, g, name) not in source:
                    source[(d, g, name)] = str(value)
        slots_out, spans_out = [], []
        for i, (probs, text) in enumerate(zip(df["slot_probs"].to_list(), df["text"].to_list(), strict=True)):
            chosen = {}
            spans = {}
            for j, name in enumerate(names):
                if probs[j] >= 0.5:
                    value = source.get((keys[i], goals[i], name))
                    if value is not None:
                        chosen[name] = value
                        span = _span(text, value)
                        if span is not None:
                            spans[name] = span
            slots_out.append(json.dumps(chosen, sort_keys=True))
            spans_out.append(json.dumps(spans, sort_keys=True))
        return slots_out, spans_out

    def apply(self, logs: Logs, signals: pl.DataFrame | None = None, *, threshold: float | None = None) -> pl.DataFrame:
        return self.label_table(turn_table(logs.turns(), _signals(logs, signals)), threshold=threshold)

    def summary(self) -> dict[str, Any]:
        return {
            "dialogues": self.history.dialogues,
            "turns": self.history.turns,
            "seconds": round(self.history.seconds, 2),
            "pretrain_swap_accuracy": self.history.pretrain_swap_accuracy[-1:],
            "threshold": self.config.threshold,
        }

    def save(self, root: Path) -> None:
        """``labels/labels.pt`` (weights) and ``labels/labels.json`` in the set at ``root``."""
        directory = root / LABELS_DIR
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), directory / WEIGHTS_FILE)
        meta = {
            "shape": asdict(self.model.shape),
            "vocab": asdict(self.vocab),
            "config": asdict(self.config),
            "history": asdict(self.history),
            "encoder": self.encoder.name if self.encoder else None,
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, root: Path, encoder: TextEncoder | None = None) -> LabelModel:
        directory = root / LABELS_DIR
        meta = json.loads((directory / META_FILE).read_text())
        if meta["shape"]["n_numeric"] != len(NUMERIC):
            raise ValueError(
                f"the label model in {directory} takes {meta['shape']['n_numeric']} numerical inputs, this version "
                f"{len(NUMERIC)}: train it again (selflearn learn --labels)"
            )
        model = DialogueLabeler(ModelShape(**meta["shape"]))
        model.load_state_dict(torch.load(directory / WEIGHTS_FILE, weights_only=True))
        model.eval()
        config = LabelConfig(**{**meta["config"], "negatives": tuple(meta["config"].get("negatives", ("random",)))})
        return cls(model, Vocab(**meta["vocab"]), config, History(**meta["history"]), encoder)
