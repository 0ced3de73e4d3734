"""Online rewriting: before NLU, replace an utterance that tends to fail with the form that worked instead.

Two layers, checked in order: **personal** (this user's own rephrases: "weather in wilkerson" -> "weather in
wilkerson california" for the person who lives there) and **global** (k-anonymous rules mined over all users).
Per layer: an exact hit on a known failing form needs no encoding; otherwise the utterance is encoded (MiniLM,
int8 ONNX, cached) and its nearest failing forms come from a faiss index (flat below ``flat_limit`` forms, IVF
above). Each candidate's rule is *transferred* to the utterance (the source->target token edit is applied where
the utterance contains the edited span: "turn off the kitten light" -> "turn off the kitchen light" from a rule
learned on "turn on the kitten light"), then ranked by a documented weighted score (``Ranker``). Only a candidate
above the threshold is applied; otherwise the utterance is left alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from selflearn.controls import Controls, rule_id
from selflearn.home import Endpoint, Home
from selflearn.runtime.encoder import Encoder, shared_encoder
from selflearn.runtime.form_index import FormIndex, OnlineConfig
from selflearn.runtime.patterns import Delexicaliser, fill, only_devices, own_device_word
from selflearn.runtime.ranker import Candidate, Ranker, home_entities
from selflearn.runtime.rewrites import (
    GLOBAL_TABLE,
    PATTERN_TABLE,
    Retriever,
    Rewrite,
    empty_table,
    read_global,
    read_patterns,
    read_personal,
)
from selflearn.runtime.transfer import flips
from selflearn.text import normalize

if TYPE_CHECKING:
    from selflearn.artifacts import ArtifactStore


def _allowed(found: list[Candidate], kind: str, user_id: str, off: frozenset[str]) -> list[Candidate]:
    """``found`` without the rules disabled here (``off``: their ``controls.rule_id``)."""
    if not off:
        return found
    owner = user_id if kind == "personal" else None
    return [c for c in found if rule_id(kind, owner, c.rule.source, c.rule.target) not in off]


Fallback = Callable[[Path], Retriever]  # an artifact set -> the retriever built from it (``Retrieval.load``)


class OnlineRewriter:
    """The ``Rewriter`` the runtime calls before NLU; ``load(artifact_dir)`` reads one published artifact set. With a
    ``fallback`` it is also the runtime's ``Retriever`` for requests that fail anyway (rewrite/retrieval.py)."""

    def __init__(
        self,
        global_table: pl.DataFrame,
        *,
        artifact_dir: Path | None = None,
        config: OnlineConfig | None = None,
        encoder: Encoder | None = None,
        personal_tables: dict[str, pl.DataFrame] | None = None,
        pattern_table: pl.DataFrame | None = None,
        fallback: Retriever | None = None,
    ) -> None:
        self.config = config or OnlineConfig()
        self.fallback = fallback
        self.artifact_dir = artifact_dir
        self.encoder = encoder or shared_encoder()
        self.ranker = Ranker(self.config.weights)

        def saved(table: Path) -> Path | None:
            return artifact_dir / table if artifact_dir else None

        self.global_index = FormIndex.from_table(global_table, self.encoder, self.config, saved(GLOBAL_TABLE))
        patterns = pattern_table if pattern_table is not None else empty_table()
        self.pattern_index = FormIndex.from_table(patterns, self.encoder, self.config, saved(PATTERN_TABLE))
        self._delexicalisers: dict[str, Delexicaliser] = {}
        self._only_devices: dict[str, dict[str, str]] = {}
        self._personal: dict[str, FormIndex] = {
            user: FormIndex.from_table(table, self.encoder, self.config)
            for user, table in (personal_tables or {}).items()
        }
        self._entities: dict[tuple[str, str], list[str]] = {}
        self.controls: Controls | None = None  # rules people disabled (``rewrite/controls.py``) never fire

    @classmethod
    def load(
        cls,
        artifact_dir: Path,
        *,
        config: OnlineConfig | None = None,
        encoder: Encoder | None = None,
        fallback: Fallback | None = None,
    ) -> OnlineRewriter:
        """Global table now; personal tables lazily on a user's first utterance (most users are never seen)."""
        return cls(
            read_global(artifact_dir),
            artifact_dir=artifact_dir,
            config=config,
            encoder=encoder,
            pattern_table=read_patterns(artifact_dir),
            fallback=fallback(artifact_dir) if fallback is not None else None,
        )

    @classmethod
    def from_index(
        cls, global_index: FormIndex, *, config: OnlineConfig | None = None, encoder: Encoder | None = None
    ) -> OnlineRewriter:
        """A rewriter over a prebuilt global index (benchmarks build one from generated vectors)."""
        rewriter = cls(empty_table(), config=config, encoder=encoder)
        rewriter.global_index = global_index
        return rewriter

    def personal(self, user_id: str) -> FormIndex:
        index = self._personal.get(user_id)
        if index is None:
            table = read_personal(self.artifact_dir, user_id) if self.artifact_dir else empty_table()
            index = self._personal[user_id] = FormIndex.from_table(table, self.encoder, self.config)
        return index

    def forget(self, user_id: str, texts: Iterable[str] = ()) -> None:
        """Drop the user's personal layer, cached names and the query vectors cached for ``texts`` (what they said)
        at once; their folder is deleted by the forget."""
        self._personal.pop(user_id, None)
        for key in [k for k in self._entities if k[1] == user_id]:
            del self._entities[key]
        self.encoder.forget(normalize(t) for t in texts)

    def candidates(self, text: str, *, user_id: str, home: Home) -> list[Candidate]:
        """Candidates above the threshold, best first: the personal layer first, then the global rules, then the
        global pattern rules (delexicalised with this home's names, filled back in)."""
        query = normalize(text)
        if not query:
            return []
        key = (home.id, user_id)
        if key not in self._entities:
            self._entities[key] = home_entities(home, user_id)
        entities = self._entities[key]
        off = self.controls.disabled(home.id) if self.controls is not None else frozenset()
        layers = [("personal", self.personal(user_id))] if "personal" in self.config.layers else []
        layers += [("global", self.global_index)] if "global" in self.config.layers else []
        for kind, layer in layers:
            found = _allowed(self._layer_candidates(query, layer, entities), kind, user_id, off)
            if found:
                return found
        if "global" in self.config.layers and len(self.pattern_index):
            return _allowed(self._pattern_candidates(query, home), "pattern", user_id, off)
        return []

    def _pattern_candidates(self, query: str, home: Home) -> list[Candidate]:
        """Pattern rules: "lights out in the lounge" -> "lights out in the _area_" -> the rule's target with
        "lounge" put back. A target that needs a name the utterance did not give is skipped."""
        delex = self._delexicalisers.get(home.id)
        if delex is None:
            delex = self._delexicalisers[home.id] = Delexicaliser.for_home(home)
        pattern, values = delex.apply(query)
        if home.id not in self._only_devices:
            self._only_devices[home.id] = only_devices(home)
        found = []
        for candidate in self._layer_candidates(pattern, self.pattern_index, ()):
            text = fill(candidate.text, values)
            if text is None and not values and own_device_word(candidate.rule.source, candidate.rule.target):
                # "start the hoover": the utterance names nothing, so the device can only be the home's one vacuum.
                text = fill(candidate.text, self._only_devices[home.id])
            if text is not None and text != query and not flips(query, text):
                found.append(replace(candidate, text=text))
        return found

    def _layer_candidates(self, query: str, layer: FormIndex, entities: Sequence[str]) -> list[Candidate]:
        if not len(layer):
            return []
        if query in layer.rules:
            hits = [(query, 1.0)]
        elif query in layer.good or layer.anchors.isdisjoint(query.split()):
            return []
        else:
            vector = self.encoder.encode_one(query)
            hits = [(f, c) for f, c in layer.neighbours(vector, self.config.k) if c >= self.config.min_cosine]
        found = [
            c
            for form, cosine in hits
            for rule in layer.rules[form]
            if (c := self.ranker.score(query, rule, cosine, entities, floor=self.config.threshold)) is not None
        ]
        found.sort(key=lambda c: -c.score)
        return [c for c in found if c.score >= self.config.threshold]

    def best(self, text: str, *, user_id: str, home: Home) -> Candidate | None:
        found = self.candidates(text, user_id=user_id, home=home)
        return found[0] if found else None

    def rewrite(self, text: str, *, user_id: str, home: Home, endpoint: Endpoint, now: datetime) -> Rewrite | None:
        best = self.best(text, user_id=user_id, home=home)
        return None if best is None else Rewrite(text=best.text, source=best.rule.layer, score=round(best.score, 4))

    def retrieve(self, text: str, *, user_id: str, home: Home, endpoint: Endpoint, now: datetime) -> Rewrite | None:
        """The fallback's answer for a request that failed after the rules (None without a fallback: abstain)."""
        if self.fallback is None:
            return None
        return self.fallback.retrieve(text, user_id=user_id, home=home, endpoint=endpoint, now=now)


class LiveRewriter:
    """Follows an ``ArtifactStore``'s current pointer: a newly published set is swapped in whole (never half-read).

    ``rewrite`` checks the pointer at most every ``check_seconds``; the loop calls ``reload_if_changed`` right after
    publishing so the next day starts on the new set.
    """

    def __init__(
        self,
        artifacts: ArtifactStore,
        *,
        config: OnlineConfig | None = None,
        encoder: Encoder | None = None,
        check_seconds: float = 1.0,
        fallback: Fallback | None = None,
    ) -> None:
        self.artifacts = artifacts
        self.config = config
        self.encoder = encoder
        self.fallback = fallback
        self.check_seconds = check_seconds
        self.current: OnlineRewriter | None = None
        self.controls = Controls(artifacts.root)  # re-read on change: a disabled rule stops firing at once
        self.cpu_seconds: list[float] = []  # per call: this thread's CPU time (the loop reports the rewriter's cost)
        self._checked = -math.inf
        self.reload_if_changed()

    def reload_if_changed(self) -> bool:
        self._checked = time.monotonic()
        directory = self.artifacts.current_dir()
        loaded = self.current.artifact_dir if self.current else None
        if directory is None or directory == loaded:
            return False
        self.current = OnlineRewriter.load(directory, config=self.config, encoder=self.encoder, fallback=self.fallback)
        self.current.controls = self.controls
        return True

    def forget(self, user_id: str, texts: Iterable[str] = ()) -> None:
        if self.current is not None:
            self.current.forget(user_id, texts)

    def rewrite(self, text: str, *, user_id: str, home: Home, endpoint: Endpoint, now: datetime) -> Rewrite | None:
        if time.monotonic() - self._checked >= self.check_seconds:
            self.reload_if_changed()
        if self.current is None:
            return None
        start = time.thread_time()
        found = self.current.rewrite(text, user_id=user_id, home=home, endpoint=endpoint, now=now)
        self.cpu_seconds.append(time.thread_time() - start)
        return found

    def retrieve(self, text: str, *, user_id: str, home: Home, endpoint: Endpoint, now: datetime) -> Rewrite | None:
        if self.current is None:
            return None
        return self.current.retrieve(text, user_id=user_id, home=home, endpoint=endpoint, now=now)
