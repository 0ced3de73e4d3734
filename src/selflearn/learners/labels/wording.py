"""Evidence about a turn's wording and speaker from the whole log corpus, not just its own dialogue.

Which stage failed is often visible only across dialogues. A mishearing is a one-off: the heard text ("set a
timer for 30 meetings") is seen nowhere else in the logs, yet it is one word away from a command that works. A
wording the assistant does not understand ("warm it up to 18") or a device name it does not know ("the lamp
thing") recurs, and keeps failing, for everyone who uses it. Speech from a television comes from a voice that never
issues a command that works. ``WordingStats`` keeps these counts from the training logs; ``with_wording`` adds
them as columns, leaving each row out of its own counts at fit time so training and unseen logs look alike.
Nothing here reads gold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from rapidfuzz import fuzz, process

NEAR_COMMAND = 0.8  # character similarity to a working command above which a one-off wording looks misheard
MIN_SPEAKER_TURNS = 5  # a speaker's success share is only evidence once they have said this much


@dataclass
class WordingStats:
    """Counts from training logs: working command forms, per-form use and failures, per-speaker success."""

    success_forms: list[str] = field(default_factory=list)
    """Normalised command forms that worked, for matching failed turns to them."""
    forms: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Text -> (turns, turns with defect evidence)."""
    speakers: dict[str, tuple[int, int]] = field(default_factory=dict)
    """User id -> (turns, clean successes)."""

    @classmethod
    def from_frame(cls, df: pl.DataFrame) -> WordingStats:
        """Stats of a ``dialogue_frame`` (needs ``clean_success`` and ``defect_evidence``)."""
        forms = df.group_by("text").agg(n=pl.len(), bad=pl.col("defect_evidence").sum())
        speakers = df.group_by("user_id").agg(n=pl.len(), ok=pl.col("clean_success").sum())
        return cls(
            sorted(set(df.filter(pl.col("clean_success"))["text"].to_list())),
            {t: (int(n), int(b)) for t, n, b in forms.iter_rows()},
            {u: (int(n), int(k)) for u, n, k in speakers.iter_rows()},
        )

    def nearest_command(self, texts: Sequence[str]) -> np.ndarray:
        """Similarity (0-1) of each text to the closest *other* working command form (0 when there is none)."""
        unique = sorted(set(texts))
        best = np.zeros(len(unique), dtype=np.float32)
        if unique and self.success_forms:
            scores = process.cdist(unique, self.success_forms, scorer=fuzz.ratio, workers=1, dtype=np.uint8)
            index = {t: i for i, t in enumerate(self.success_forms)}
            for row, text in enumerate(unique):
                if text in index:
                    scores[row, index[text]] = 0
            best = scores.max(axis=1).astype(np.float32) / 100.0
        lookup = dict(zip(unique, best, strict=True))
        return np.array([lookup[t] for t in texts], dtype=np.float32)


def with_wording(df: pl.DataFrame, stats: WordingStats, *, own: bool) -> pl.DataFrame:
    """Adds ``nearest_command``, ``form_seen``, ``form_fail_share``, ``speaker_success``, ``one_off_near``.

    ``own``: the rows are the logs ``stats`` came from, so each row is taken out of its own counts.
    """
    texts = df["text"].to_list()
    users = df["user_id"].to_list()
    defect = df["defect_evidence"].to_numpy().astype(np.int64)
    clean = df["clean_success"].to_numpy().astype(np.int64)
    mine = 1 if own else 0
    form_n = np.array([stats.forms.get(t, (0, 0))[0] for t in texts]) - mine
    form_bad = np.array([stats.forms.get(t, (0, 0))[1] for t in texts]) - mine * defect
    user_n = np.array([stats.speakers.get(u, (0, 0))[0] for u in users]) - mine
    user_ok = np.array([stats.speakers.get(u, (0, 0))[1] for u in users]) - mine * clean
    with np.errstate(invalid="ignore", divide="ignore"):
        fail_share = np.where(form_n > 0, form_bad / np.maximum(form_n, 1), np.nan)
        speaker = np.where(user_n >= MIN_SPEAKER_TURNS, user_ok / np.maximum(user_n, 1), np.nan)
    near = stats.nearest_command(texts)
    return df.with_columns(
        nearest_command=pl.Series(near, dtype=pl.Float32),
        form_seen=pl.Series(np.log1p(form_n), dtype=pl.Float32),
        form_fail_share=pl.Series(fail_share, dtype=pl.Float32).fill_nan(None),
        speaker_success=pl.Series(speaker, dtype=pl.Float32).fill_nan(None),
        one_off_near=pl.Series((near >= NEAR_COMMAND) & (form_n == 0)),
    )
