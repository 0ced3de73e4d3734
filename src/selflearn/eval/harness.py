"""The eval harness behind ``selflearn eval SUITE --json``: one contract, a registry that suites add themselves to.

Every headline number in the README comes from here. A suite is a function ``(EvalConfig) -> EvalResult`` living
in ``selflearn.eval.suites.<name>``, registered with ``@suite("name")``; suites measure against gold, learners never do.
Progress goes to stderr so stdout carries exactly one JSON object.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from selflearn.errors import NotFound
from selflearn.eval import suites as _suites_pkg

Number = int | float


@dataclass(frozen=True)
class EvalConfig:
    seed: int = 0
    """Seed of the simulator and every learner the suite runs."""
    quick: bool = False
    """Run the small variant (fewer homes, days and rows) for development."""
    home: Path | None = None
    """A home file to evaluate on instead of the suite's generated homes (suites that take one)."""
    work_dir: Path | None = None
    """Where the suite writes its stores and artifacts; None: a temporary directory."""
    ha_config: Path | None = None
    """A Home Assistant config directory to import the home from (suites that take one)."""
    retrieval: bool = True
    """The runtime falls back on retrieval over what works (suites that take it: ``loop``)."""
    phrasing: Literal["templates", "realistic"] = "templates"
    """How simulated people word requests (``loop``)."""


@dataclass
class EvalResult:
    n: int
    """Items the metrics were computed over (turns, rows, cases: the suite says which)."""
    metrics: dict[str, Number]
    """Metric name -> value, the suite's result."""
    baseline: dict[str, Number] = field(default_factory=dict)
    """Metric name -> value of the same metric for the baseline it is compared with."""


@dataclass(frozen=True)
class Report:
    suite: str
    """Name of the suite that ran."""
    seed: int
    """Seed it ran with."""
    n: int
    """Items the metrics were computed over."""
    seconds: float
    """Wall-clock time of the run, in seconds."""
    metrics: dict[str, Number]
    """Metric name -> value, the suite's result."""
    baseline: dict[str, Number]
    """Metric name -> value of the baseline, measured in the same run."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "suite": self.suite,
                "seed": self.seed,
                "n": self.n,
                "seconds": round(self.seconds, 3),
                "metrics": self.metrics,
                "baseline": self.baseline,
            },
            sort_keys=False,
        )


SuiteFn = Callable[[EvalConfig], EvalResult]
_REGISTRY: dict[str, SuiteFn] = {}


def suite(name: str) -> Callable[[SuiteFn], SuiteFn]:
    def register(fn: SuiteFn) -> SuiteFn:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"eval suite {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return register


def available() -> list[str]:
    for mod in pkgutil.iter_modules(_suites_pkg.__path__):
        importlib.import_module(f"{_suites_pkg.__name__}.{mod.name}")
    return sorted(_REGISTRY)


def _load(name: str) -> None:
    """Import the suite's own module (``peer-ha`` -> ``suites/peer_ha.py``) so one broken suite cannot stop another;
    only a name with no module of its own needs every suite imported."""
    module = name.replace("-", "_")
    if module in {m.name for m in pkgutil.iter_modules(_suites_pkg.__path__)}:
        importlib.import_module(f"{_suites_pkg.__name__}.{module}")
    if name not in _REGISTRY:
        names = available()
        if name not in _REGISTRY:
            raise NotFound(f"unknown eval suite {name!r}; available: {', '.join(names)}")


def run(name: str, config: EvalConfig) -> Report:
    _load(name)
    start = time.perf_counter()
    result = _REGISTRY[name](config)
    seconds = time.perf_counter() - start
    return Report(name, config.seed, result.n, seconds, _clean(result.metrics), _clean(result.baseline))


def _clean(values: dict[str, Number]) -> dict[str, Number]:
    """Plain JSON numbers (no numpy scalars, no NaN: a missing value is a bug to surface, not to print)."""
    out: dict[str, Number] = {}
    for key, value in values.items():
        number = int(value) if isinstance(value, bool) else value
        as_float = float(number)
        if as_float != as_float:
            raise ValueError(f"metric {key!r} is NaN")
        out[key] = int(number) if float(number).is_integer() and isinstance(number, int) else round(as_float, 6)
    return out
