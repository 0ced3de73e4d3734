"""Explicit feedback: when to ask "Did I get that right?", how to read the answer, and corrections.

Policy (documented in ``docs/teaching.md``): the assistant asks only after an answer it was unsure of (NLU
confidence below ``max_confidence``) or one it produced from a rewritten utterance, and at most once per
``every_turns`` turns **and** once per ``min_interval`` per user, so nobody gets nagged. The answer is yes / no / a
correction ("no, I meant turn on the kitchen light"); a correction becomes a personal rewrite at once
(:class:`PendingRewrites`), before any offline learning has run.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from selflearn import ids, paths
from selflearn.home import Endpoint, Home
from selflearn.runtime.rewrites import Rewrite, Rewriter
from selflearn.text import normalize

FEEDBACK_QUESTION = "Did I get that right?"  # the runtime appends it to the response

_CORRECTION = re.compile(
    r"^(?:(?:no|nope|not quite|wrong|actually|sorry)\s+)*"
    r"(?:i meant|i mean|i said|what i meant was|i wanted)\s+(?P<c>.+)$"
)
_YES = re.compile(
    r"^(?:yes|yeah|yep|yup|you did|it did|yes you did|yes it did|that's right|correct|perfect|sure did|great|"
    r"exactly|thanks|thank you)(?: thanks| thank you)?$"
)
_NO = re.compile(r"^(?:no|nope|not really|no you didn't|you didn't|it didn't|not at all|wrong|no it didn't)$")
_NO_THEN = re.compile(r"^(?:no|nope|not really|wrong)\s+(?P<c>\w+(?:\s+\w+)+)$")


@dataclass(frozen=True)
class FeedbackAnswer:
    kind: Literal["yes", "no", "correction"]
    """What the user answered to "Did I get that right?"."""
    correction: str | None = None
    """What they meant instead, when they said it ("no, I meant ...")."""


def parse_answer(text: str, *, asked: bool) -> FeedbackAnswer | None:
    """Read a reply to the previous turn. Corrections ("I meant X") count at any time; a bare yes/no only right
    after the assistant asked, since "no" on its own is otherwise a new request's business."""
    form = normalize(text)
    m = _CORRECTION.match(form)
    if m:
        return FeedbackAnswer("correction", m["c"])
    if not asked:
        return None
    if _YES.match(form):
        return FeedbackAnswer("yes")
    if _NO.match(form):
        return FeedbackAnswer("no")
    m = _NO_THEN.match(form)
    if m:
        return FeedbackAnswer("correction", m["c"])
    return None


@dataclass
class FeedbackPolicy:
    """Rate-limited "Did I answer your question?". ``should_ask`` is called once per turn by the runtime."""

    every_turns: int = 20
    """Ask at most once per this many turns of a user."""
    min_interval: timedelta = timedelta(hours=1)
    """And at most once per this much time per user."""
    max_confidence: float = 0.6
    """Only ask about readings whose NLU confidence is below this (0..1)."""
    _turns_since: dict[str, int] = field(default_factory=dict, repr=False)
    _last_asked: dict[str, datetime] = field(default_factory=dict, repr=False)
    _pending: set[str] = field(default_factory=set, repr=False)

    def should_ask(self, *, user_id: str, now: datetime, confidence: float, rewritten: bool) -> bool:
        since = self._turns_since.get(user_id, self.every_turns) + 1
        self._turns_since[user_id] = since
        if not (rewritten or confidence < self.max_confidence):
            return False
        last = self._last_asked.get(user_id)
        if since <= self.every_turns or (last is not None and now - last < self.min_interval):
            return False
        self._turns_since[user_id] = 0
        self._last_asked[user_id] = now
        self._pending.add(user_id)
        return True

    def take_pending(self, user_id: str) -> bool:
        """Whether the question was just put to this user (consumed: the next utterance is the only answer)."""
        if user_id in self._pending:
            self._pending.discard(user_id)
            return True
        return False

    def forget(self, user_id: str) -> None:
        """Drop the user's ask history (part of forgetting a user)."""
        self._turns_since.pop(user_id, None)
        self._last_asked.pop(user_id, None)
        self._pending.discard(user_id)


@dataclass(frozen=True)
class PendingRewrite:
    user_id: str
    """Who corrected the assistant."""
    source: str
    """Normalised form of what the user said."""
    target: str
    """What they meant."""
    ts: datetime
    """When the correction was given (UTC)."""


def pending_root() -> Path:
    """Where the service keeps corrections given as feedback: ``<data dir>/feedback/personal/<user_id>/``."""
    return paths.data_dir() / "feedback"


class PendingRewrites:
    """Per-user rewrites from corrections, usable on the next turn; optionally persisted as
    ``<root>/personal/<user_id>/feedback_rewrites.jsonl`` (one JSON object per line: user_id, source, target, ts),
    which the offline learner may fold into the personal rewrite layer."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self._by_user: dict[str, dict[str, PendingRewrite]] = {}
        if root is not None and (root / "personal").is_dir():
            for path in sorted((root / "personal").glob("*/feedback_rewrites.jsonl")):
                for line in path.read_text(encoding="utf-8").splitlines():
                    row = json.loads(line)
                    self._remember(
                        PendingRewrite(row["user_id"], row["source"], row["target"], datetime.fromisoformat(row["ts"]))
                    )

    def _remember(self, rw: PendingRewrite) -> None:
        self._by_user.setdefault(rw.user_id, {})[rw.source] = rw

    def add(self, user_id: str, source_text: str, target_text: str, ts: datetime) -> PendingRewrite:
        rw = PendingRewrite(user_id, normalize(source_text), target_text.strip(), ts)
        self._remember(rw)
        if self.root is not None:
            path = self._file(user_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as f:
                row = {"user_id": user_id, "source": rw.source, "target": rw.target, "ts": ts.isoformat()}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return rw

    def get(self, user_id: str, text: str) -> PendingRewrite | None:
        return self._by_user.get(user_id, {}).get(normalize(text))

    def all(self, user_id: str) -> list[PendingRewrite]:
        return sorted(self._by_user.get(user_id, {}).values(), key=lambda r: r.source)

    def forget(self, user_id: str) -> int:
        n = len(self._by_user.pop(user_id, {}))
        if self.root is not None and self._file(user_id).parent.exists():
            shutil.rmtree(self._file(user_id).parent)
        return n

    def _file(self, user_id: str) -> Path:
        assert self.root is not None
        return ids.child_path(self.root / "personal", user_id) / "feedback_rewrites.jsonl"


class FeedbackRewriter:
    """A user's own corrections first (source ``feedback``), then the learned rewriter: "no, I meant X" changes
    the very next identical request, long before the nightly learner has seen it."""

    def __init__(self, pending: PendingRewrites, inner: Rewriter | None = None) -> None:
        self.pending = pending
        self.inner = inner

    def rewrite(self, text: str, *, user_id: str, home: Home, endpoint: Endpoint, now: datetime) -> Rewrite | None:
        fix = self.pending.get(user_id, text)
        if fix is not None:
            return Rewrite(text=fix.target, source="feedback", score=1.0)
        if self.inner is None:
            return None
        return self.inner.rewrite(text, user_id=user_id, home=home, endpoint=endpoint, now=now)
