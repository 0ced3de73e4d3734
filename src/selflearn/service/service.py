"""Everything a request needs, shared by the HTTP app, the dashboard and the Wyoming server: one runtime per home,
the store (turns buffered and written in batches by a background thread, so ``interpret`` never waits on a disk
write), the teacher, tokens and the artifact set (picked up without restart)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException

from selflearn.artifacts import ArtifactStore
from selflearn.forget import forget_user
from selflearn.home import Home
from selflearn.integrations.conversation import ResultReport, with_result
from selflearn.runtime.feedback import FeedbackPolicy, FeedbackRewriter, PendingRewrites
from selflearn.runtime.feedback import pending_root as default_pending_root
from selflearn.schema import Feedback, Preference, Turn
from selflearn.service.middleware import Metrics
from selflearn.service.models import Forgotten, canonical_value
from selflearn.service.tokens import TokenInfo, Tokens
from selflearn.store.logstore import Store
from selflearn.teach.teacher import Teacher

FLUSH_SECONDS = 0.5
FLUSH_ROWS = 512


class Service:
    """Everything a request needs: homes, one runtime per home, the store, the teacher, tokens, artifacts."""

    def __init__(
        self,
        homes: Sequence[Home],
        *,
        db: Path | None = None,
        artifacts: Path | None = None,
        tokens: Tokens | None = None,
        pending_root: Path | None = None,
        rewriter: Any = None,
    ) -> None:
        from selflearn.runtime.runtime import Runtime

        self.homes = {h.id: h for h in homes}
        self.store = Store(db)
        self.store_lock = threading.Lock()
        self.learn_lock = threading.Lock()  # a forget waits for a running learn, whose snapshot may hold the user
        self.artifacts = ArtifactStore(artifacts)
        self.tokens = tokens or Tokens()
        self.pending = PendingRewrites(pending_root or default_pending_root())
        self.policy = FeedbackPolicy()
        self.prefs = LockedPreferences(self.store, self.store_lock)
        self.on_forget: list[Callable[[str], None]] = []  # also forget here at once (the dashboard's snapshot)
        self.teacher = Teacher(
            self.prefs,
            policy=self.policy,
            pending=self.pending,
            on_feedback=self.add_feedback,
        )
        self.rewriter = rewriter if rewriter is not None else _live_rewriter(self.artifacts)
        self.metrics = Metrics()
        self._buffer: list[Turn] = []
        self._feedback: list[Feedback] = []
        self._buffer_lock = threading.Lock()
        self._flush_lock = threading.Lock()  # held from taking the buffer to the end of its write
        self.runtimes = {
            h.id: Runtime(
                h,
                rewriter=FeedbackRewriter(self.pending, self.rewriter),
                preferences=self.teacher.preferences,
                sink=self._sink,
                feedback_policy=self.policy,
                teacher=self.teacher,
            )
            for h in homes
        }
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="selflearn-flush", daemon=True)
        self._flusher.start()

    # ---- logging

    def _sink(self, turn: Turn) -> None:
        with self._buffer_lock:
            self._buffer.append(turn)
            full = len(self._buffer) >= FLUSH_ROWS
        if full:
            self.flush()

    def add_feedback(self, fb: Feedback) -> None:
        with self._buffer_lock:
            self._feedback.append(fb)

    def flush(self) -> None:
        with self._flush_lock:
            with self._buffer_lock:
                turns, self._buffer = self._buffer, []
                feedback, self._feedback = self._feedback, []
            if turns or feedback:
                with self.store_lock:
                    self.store.add(turns=turns, feedback=feedback)

    def record_result(self, home_id: str, report: ResultReport) -> Turn:
        """Put HA's report of carrying out one of this home's turns on the logged turn, still buffered or stored
        (under the flush lock a turn is in exactly one of the two). LookupError for a turn not of this home,
        ValueError for one without intents or reported already."""
        with self._flush_lock:
            with self._buffer_lock:
                at = next((i for i, t in enumerate(self._buffer) if t.turn_id == report.turn_id), None)
                if at is not None and self._buffer[at].home_id == home_id:
                    self._buffer[at] = turn = with_result(self._buffer[at], report)
                    return turn
            with self.store_lock:
                stored = self.store.turn(report.turn_id)
                if stored is None or stored.home_id != home_id:
                    raise LookupError(f"no turn {report.turn_id!r} in home {home_id!r}")
                turn = with_result(stored, report)
                self.store.set_outcome(turn)
            return turn

    def _flush_loop(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()

    @property
    def closed(self) -> bool:
        """Whether ``close`` has begun: a background reader checks this under ``store_lock`` before reading."""
        return self._stop.is_set()

    def close(self) -> None:
        self._stop.set()
        self._flusher.join(timeout=5)
        self.flush()
        with self.store_lock:  # a dashboard build that holds it finishes its read first; a later one sees `closed`
            self.store.close()

    # ---- lookups

    def person_home(self, token: TokenInfo, user_id: str) -> Home:
        home = self.homes.get(token.home or "")
        if home is None or all(p.id != user_id for p in home.people):
            raise HTTPException(404, f"no user {user_id!r} in this home")
        return home

    def turn_of(self, user_id: str, turn_id: str) -> Turn:
        """The user's own turn (buffered or stored); 404 for anyone else's or an unknown id."""
        with self._buffer_lock:
            turn = next((t for t in self._buffer if t.turn_id == turn_id), None)
        if turn is None:
            with self.store_lock:
                turn = self.store.turn(turn_id)
        if turn is None or turn.user_id != user_id:
            raise HTTPException(404, f"no turn {turn_id!r} of this user")
        return turn

    def edit_preference(self, user_id: str, kind: str, key: str, scope: str, value: str) -> Preference:
        """Give the user's taught preference (kind, key, scope) a new value; how it was taught stays. 404: none."""
        found = [p for p in self.teacher.store.preferences(user_id) if (p.kind, p.key, p.scope) == (kind, key, scope)]
        if not found:
            raise HTTPException(404, f"no {kind} preference {key!r} of {user_id!r} to edit")
        edited = Preference.model_validate(
            found[0].model_dump() | {"value": canonical_value(found[0].kind, value), "ts": datetime.now(UTC)}
        )
        self.teacher.store.put_preference(edited)
        return edited

    def forget(self, user_id: str) -> Forgotten:
        """Forget the user on disk (``forget.forget_user``: store, artifact sets, pending rewrites, then a scan of
        every file) and at once in memory: the rewriter's personal layer, preferences cache, teacher, feedback
        policy and runtimes. A running learn publishes first: its snapshot may hold the user's turns."""
        self.flush()
        with self.learn_lock, self.store_lock:
            said = self.store.phrases(user_id, min_chars=0)  # what the rewriter may have cached vectors for
            done = forget_user(user_id, store=self.store, artifacts=self.artifacts, pending=self.pending)
        forget_rewriter = getattr(self.rewriter, "forget", None)
        if forget_rewriter is not None:
            forget_rewriter(user_id, said)
        self.teacher.forget(user_id)
        self.policy.forget(user_id)
        for runtime in self.runtimes.values():
            runtime.forget(user_id)
        self.prefs.invalidate(user_id)
        for hook in self.on_forget:
            hook(user_id)
        return Forgotten(**(asdict(done) | {"left": [Path(f).name for f in done.left]}))  # no server paths out


class LockedPreferences:
    """The store's preferences behind the store lock (the flusher thread shares the connection), cached per user:
    every utterance reads them, and only this service's teacher and endpoints change them while it runs."""

    def __init__(self, store: Store, lock: threading.Lock) -> None:
        self.store = store
        self.lock = lock
        self._cache: dict[str, list[Preference]] = {}

    def preferences(self, user_id: str) -> list[Preference]:
        cached = self._cache.get(user_id)
        if cached is None:
            with self.lock:
                cached = self._cache[user_id] = self.store.preferences(user_id)
        return list(cached)

    def put_preference(self, p: Preference) -> None:
        with self.lock:
            self.store.put_preference(p)
            self._cache.pop(p.user_id, None)

    def delete_preferences(self, user_id: str, *, kind: str | None = None, key: str | None = None) -> int:
        with self.lock:
            self._cache.pop(user_id, None)
            return self.store.delete_preferences(user_id, kind=kind, key=key)

    def invalidate(self, user_id: str) -> None:
        self._cache.pop(user_id, None)


def _live_rewriter(artifacts: ArtifactStore) -> Any:
    from selflearn.runtime.retrieval import Retrieval
    from selflearn.runtime.rewriter import LiveRewriter

    return LiveRewriter(artifacts, fallback=Retrieval.load)
