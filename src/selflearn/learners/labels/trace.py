"""Numeric features from each pipeline stage's logged decision (``Turn.trace``), whatever stages the runtime has.

The runtime records, per stage, its top-k hypotheses with scores (NLU intents, ER candidates, ASR n-best …). A
failure is most visible in those: a small margin between the first two NLU hypotheses, an ER winner with a low
score. Rather than hard-coding one trace layout, every stage is flattened by shape: a list of scored hypotheses
gives ``top``/``margin``/``n``; a number or boolean is kept as is; nested dicts are walked two levels deep.
Feature names are fixed at fit time and missing ones are NaN at apply time (gradient boosting handles NaN).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

SCORE_KEYS = ("score", "confidence", "prob", "probability")
MAX_DEPTH = 3


def _score(item: Any) -> float | None:
    if isinstance(item, dict):
        for key in SCORE_KEYS:
            value = item.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
    if isinstance(item, list | tuple) and len(item) >= 2 and isinstance(item[-1], int | float):
        return float(item[-1])
    return None


def _walk(prefix: str, value: Any, out: dict[str, float], depth: int) -> None:
    if isinstance(value, bool):
        out[prefix] = float(value)
    elif isinstance(value, int | float):
        if math.isfinite(float(value)):
            out[prefix] = float(value)
    elif isinstance(value, list):
        scores = sorted((s for s in map(_score, value) if s is not None), reverse=True)
        out[f"{prefix}.n"] = float(len(value))
        if scores:
            out[f"{prefix}.top"] = scores[0]
            out[f"{prefix}.margin"] = scores[0] - scores[1] if len(scores) > 1 else scores[0]
    elif isinstance(value, dict) and depth < MAX_DEPTH:
        for key, sub in value.items():
            _walk(f"{prefix}.{key}" if prefix else str(key), sub, out, depth + 1)


def flatten_trace(trace: str | dict[str, Any] | None) -> dict[str, float]:
    """One turn's trace as ``{"nlu.hypotheses.top": 0.91, "nlu.hypotheses.margin": 0.4, …}``."""
    if not trace:
        return {}
    data = json.loads(trace) if isinstance(trace, str) else trace
    out: dict[str, float] = {}
    _walk("", data, out, 0)
    return out


def trace_names(rows: Iterable[dict[str, float]], *, min_share: float = 0.01) -> list[str]:
    """Feature names present in at least ``min_share`` of the rows (rare keys would only add noise)."""
    counts: dict[str, int] = {}
    n = 0
    for row in rows:
        n += 1
        for key in row:
            counts[key] = counts.get(key, 0) + 1
    return sorted(k for k, c in counts.items() if c >= max(1, min_share * n))
