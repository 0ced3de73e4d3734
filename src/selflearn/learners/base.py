"""The learner contract, scikit-learn style: ``Learner.fit(logs) -> Artifact``; ``Artifact.save(root)``,
``Artifact.load(root)`` and the runtime-side ``Artifact.apply(logs)``.

Every learner of the nightly run (signals, the rephrase span model, rewrite mining, retrieval, the retrieval
encoder, the label model, FPI) reads only ``Logs`` (turns and feedback, never gold) and returns an artifact that
writes itself into the artifact set being built at ``root``; the published set is the union of the configured
learners' artifacts. Learners later in the run reuse what earlier ones found through ``Evidence`` (the scored
turns, the rephrase links, the homes' configurations), so the defect signals are computed once per run; handed
plain ``Logs`` a learner derives what it needs itself, so each one can be fitted, saved, loaded and applied alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, TypeVar

import polars as pl

from selflearn.errors import SelflearnError
from selflearn.home import Home


class Logs(Protocol):
    """What learners read: the learner-facing log view (``store.LogView``); gold is not part of it."""

    def turns(self) -> pl.DataFrame: ...

    def feedback(self) -> pl.DataFrame: ...


@dataclass(frozen=True)
class Evidence:
    """Logs with what the run's earlier learners found in them (itself ``Logs``, so any learner accepts it)."""

    logs: Logs
    """The logs the run learns from."""
    scored: pl.DataFrame
    """The turns with the defect signal columns (``DefectSignals.score_frame``)."""
    links: pl.Series | None = None
    """Per scored turn: is the user's next turn a rephrase of it (None: the mining rule decides)."""
    homes: tuple[Home, ...] = ()
    """The homes' configurations (names for pattern rules and retrieval; not labels)."""

    def turns(self) -> pl.DataFrame:
        return self.logs.turns()

    def feedback(self) -> pl.DataFrame:
        return self.logs.feedback()

    def with_links(self, links: pl.Series | None) -> Evidence:
        """The same evidence with rephrase links from another detector (the span model)."""
        return Evidence(self.logs, self.scored, links, self.homes)


class TooLittle(SelflearnError, ValueError):
    """The logs hold too little for this learner; the run publishes its set without this learner's artifact."""


class Artifact(ABC):
    """What a learner produces: written into (and read back from) an artifact set, applied by the runtime."""

    marker: ClassVar[Path]
    """The file (relative to the set's root) whose presence means the set holds this artifact."""

    @abstractmethod
    def save(self, root: Path) -> None:
        """Write into the artifact set being built at ``root`` (file names and columns are the set's format)."""

    @classmethod
    @abstractmethod
    def load(cls, root: Path) -> Self:
        """Read back from the artifact set at ``root`` (what ``save`` wrote)."""

    @abstractmethod
    def apply(self, logs: Logs) -> pl.DataFrame:
        """What the runtime does with this artifact, per turn of ``logs`` (``turn_id`` first)."""

    def summary(self) -> dict[str, Any]:
        """A few numbers about how it was learned, for ``LearnReport.parts`` (JSON-able)."""
        return {}

    @classmethod
    def find(cls, root: Path) -> Self | None:
        """The artifact of the set at ``root``, or None when the set has none (an older or smaller set)."""
        return cls.load(root) if (root / cls.marker).exists() else None


A = TypeVar("A", bound=Artifact, covariant=True)


class Learner(Protocol[A]):
    """Fits one artifact on logs (never gold); ``name`` is its key in ``LearnConfig.learners`` and the report."""

    name: ClassVar[str]
    """The learner's name in ``LearnConfig.learners`` and in the learn report."""

    def fit(self, logs: Logs) -> A: ...


def save_set(root: Path, artifacts: Sequence[Artifact]) -> None:
    """Write the union of ``artifacts`` into the set being built at ``root`` (the publisher's build step)."""
    for artifact in artifacts:
        artifact.save(root)
