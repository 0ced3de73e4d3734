"""The dialogue-level Transformer: one token per turn, built from frozen sentence embeddings plus log features.

Each turn's input is ``[u, r, u*r]`` (utterance and response embeddings and their product, which makes "does this
response fit this request" easy to read) projected down, concatenated with categorical embeddings (domain, NLU
intent, result status) and numerical features, plus a turn-position embedding. A small Transformer encoder lets
every turn see the turns before and after it (rephrases, feedback), then one linear head per task.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelShape:
    text_dim: int
    """Width of the text embeddings fed in."""
    n_domains: int
    """Device domains in the vocabulary."""
    n_intents: int
    """NLU intents in the vocabulary."""
    n_statuses: int
    """Result statuses (``STATUSES``)."""
    n_numeric: int
    """Numerical features per turn (``NUMERIC``)."""
    n_slots: int
    """Slot names the slot head predicts."""
    d_model: int = 64
    """Width of the transformer."""
    layers: int = 2
    """Transformer layers."""
    heads: int = 4
    """Attention heads per layer."""
    max_turns: int = 16
    """Turns per dialogue the positional embedding covers."""
    dropout: float = 0.1
    """Dropout rate in training."""


CAT_DIM = 12


class DialogueLabeler(nn.Module):
    """Heads: ``swap`` (pretraining: response swapped in?), ``boundary``, ``success``, ``intent``, ``slots``."""

    def __init__(self, shape: ModelShape):
        super().__init__()
        self.shape = shape
        d = shape.d_model
        self.text = nn.Sequential(nn.Linear(3 * shape.text_dim, d), nn.GELU())
        self.cats = nn.ModuleList(
            nn.Embedding(n, CAT_DIM) for n in (shape.n_domains, shape.n_intents, shape.n_statuses)
        )
        self.inp = nn.Linear(d + 3 * CAT_DIM + shape.n_numeric, d)
        self.pos = nn.Embedding(shape.max_turns, d)
        layer = nn.TransformerEncoderLayer(
            d, shape.heads, 2 * d, dropout=shape.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, shape.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.heads = nn.ModuleDict(
            {
                "swap": nn.Linear(d, 1),
                "boundary": nn.Linear(d, 1),
                "success": nn.Linear(d, 1),
                "intent": nn.Linear(d, shape.n_intents),
                "slots": nn.Linear(d, max(1, shape.n_slots)),
            }
        )

    def forward(
        self, utter: torch.Tensor, resp: torch.Tensor, cat: torch.Tensor, num: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``utter``/``resp``: (B, T, E) embeddings; ``cat``: (B, T, 3); ``num``: (B, T, F); ``mask``: (B, T) bool."""
        text = self.text(torch.cat([utter, resp, utter * resp], dim=-1))
        cats = [emb(cat[..., i]) for i, emb in enumerate(self.cats)]
        x = self.inp(torch.cat([text, *cats, num], dim=-1))
        positions = torch.arange(x.shape[1], device=x.device).clamp(max=self.shape.max_turns - 1)
        x = self.encoder(x + self.pos(positions), src_key_padding_mask=~mask)
        x = self.norm(x)
        out = {name: head(x) for name, head in self.heads.items()}
        for name in ("swap", "boundary", "success"):
            out[name] = out[name].squeeze(-1)
        return out
