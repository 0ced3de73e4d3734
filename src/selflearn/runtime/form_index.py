"""The rules of one rewrite layer and their dense index: exact lookup by failing form, faiss search for the rest.

Flat below ``flat_limit`` forms, IVF above; an artifact set saves the global and pattern layers' indexes beside
their tables so a process that loads the set reads them instead of encoding every form.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from selflearn.runtime.encoder import INT8_MODEL, Encoder, Vectors, shared_encoder
from selflearn.runtime.patterns import PLACEHOLDER
from selflearn.runtime.ranker import RankWeights, Rule
from selflearn.runtime.rewrites import GLOBAL_TABLE, PATTERN_TABLE, read_global, read_patterns
from selflearn.runtime.transfer import edit_anchors
from selflearn.text import normalize

if TYPE_CHECKING:
    import faiss


@dataclass(frozen=True)
class OnlineConfig:
    threshold: float = 0.55
    """Apply the best candidate only if its score reaches this (0..1)."""
    k: int = 8
    """Nearest failing forms looked at per layer."""
    min_cosine: float = 0.8
    """Ignore neighbours less similar than this (embedding cosine)."""
    flat_limit: int = 20_000
    """Up to this many forms an exact flat index; above it IVF-PQ."""
    nprobe: int = 16
    """IVF lists probed per query; 8 lost recall in the 1M bench (recall@1 0.997, recall@8 0.995; docs/rewriting.md)."""
    refine: int = 32
    """IVF: re-score the refine·k best 4-bit PQ codes on the exact vectors."""
    layers: tuple[str, ...] = ("personal", "global")
    """Rule layers, checked in this order; the eval drops "personal" for an arm."""
    weights: RankWeights = field(default_factory=RankWeights)
    """The ranker's weights."""


class FormIndex:
    """The rules of one layer: exact lookup by source form, plus a dense index over the distinct source forms."""

    def __init__(
        self, rules: Sequence[Rule], vectors: Vectors | None, config: OnlineConfig, index: faiss.Index | None = None
    ) -> None:
        """``vectors[i]`` encodes the i-th distinct source form in order of first appearance in ``rules``; or
        ``index`` holds them already (read from an artifact set)."""
        self.rules: dict[str, list[Rule]] = {}
        for rule in rules:
            self.rules.setdefault(rule.source, []).append(rule)
        self.forms = list(self.rules)
        self.good = {r.target for rules in self.rules.values() for r in rules} - set(self.rules)
        self.anchors: set[str] = set()
        for rule in rules:
            # Transfer needs every anchor of a rule, so one kind is enough for the gate: a pattern rule's words,
            # not its placeholders (nearly every utterance names a device or a room).
            anchors = edit_anchors(rule.source, rule.target)
            self.anchors |= {a for a in anchors if not PLACEHOLDER.fullmatch(a)} or anchors
        self.config = config
        if index is None and self.forms and vectors is not None:
            index = build_index(vectors, config)
        self._index = index

    @classmethod
    def from_table(
        cls, table: pl.DataFrame, encoder: Encoder, config: OnlineConfig, table_path: Path | None = None
    ) -> FormIndex:
        """Rules from a ``REWRITE_SCHEMA`` table; the dense index read from beside ``table_path`` (where the table
        was published) when one was saved for exactly these forms and this encoder, otherwise the forms are encoded."""
        rules = []
        for row in table.iter_rows(named=True):
            source, target = normalize(row["source"] or ""), normalize(row["target"] or "")
            if source and target and source != target:
                rules.append(
                    Rule(
                        source,
                        target,
                        float(row["probability"] or 0.0),
                        int(row["support"] or 0),
                        str(row["layer"] or "global"),
                    )
                )
        forms = list(dict.fromkeys(r.source for r in rules))
        saved = index_path(table_path, forms) if table_path is not None and forms else None
        if saved is not None and saved.exists():
            return cls(rules, None, config, read_index(saved, config))
        return cls(rules, encoder.encode(forms) if forms else None, config)

    def save(self, table_path: Path) -> Path | None:
        """Write the dense index beside its table (none for an empty layer); ``from_table`` reads it back."""
        import faiss

        if self._index is None:
            return None
        path = index_path(table_path, self.forms)
        faiss.write_index(self._index, str(path))
        return path

    def __len__(self) -> int:
        return len(self.forms)

    def neighbours(self, vector: Vectors, k: int) -> list[tuple[str, float]]:
        if self._index is None:
            return []
        scores, ids = self._index.search(vector.reshape(1, -1), min(k, len(self.forms)))
        return [(self.forms[i], float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]


def build_index(vectors: Vectors, config: OnlineConfig) -> faiss.Index:
    """Inner product on unit vectors = cosine. Exact (flat) for small tables; IVF for large ones: 2·sqrt(n) lists
    found through a small HNSW graph over their centroids (a query scans half the vectors that sqrt(n) lists would at
    the same ``nprobe``), the lists held as 4-bit PQ codes (one code per two dimensions) scanned with SIMD lookup
    tables (faiss "fast scan"), and the ``refine``·k best of those re-scored on the exact vectors, so the scores the
    ranker sees are exact cosines. At 1M bench forms, 1,000 near queries: search p50 1.34 -> 0.30 ms, p99 2.05 ->
    0.46 ms against flat lists, recall@1 / @8 against exact search the same (0.996 / 0.994; docs/rewriting.md).

    faiss runs single-threaded in this process: a lookup is one query, and OpenMP threads only wait on each other
    (a 10k-form flat search took 100 ms wall with two threads on the loaded 2-core machine, 1.7 ms with one)."""
    import faiss

    faiss.omp_set_num_threads(1)
    n, dim = vectors.shape
    if n <= config.flat_limit:
        index: faiss.Index = faiss.IndexFlatIP(dim)
    else:
        nlist = 2 * int(math.sqrt(n))
        lists = faiss.index_factory(dim, f"IVF{nlist}_HNSW32,PQ{dim // 2}x4fsr", faiss.METRIC_INNER_PRODUCT)
        faiss.extract_index_ivf(lists).cp.min_points_per_centroid = 20  # the same 40k-vector sample at 1M as before
        index = search_settings(faiss.IndexRefineFlat(lists), config)
        rng = np.random.default_rng(0)
        index.train(vectors[rng.choice(n, size=min(n, 20 * nlist), replace=False)])
    index.add(vectors)
    return index


def index_path(table_path: Path, forms: Sequence[str]) -> Path:
    """``rewrites/global.parquet`` -> ``rewrites/global.<encoder model>.<digest of the forms>.faiss``: an index is
    only ever read for the same forms in the same order, encoded by the same encoder (a changed derivation bumps
    the model's name); a table edited after its index was written is encoded again instead."""
    digest = hashlib.sha256("\n".join(forms).encode()).hexdigest()[:16]
    return table_path.with_name(f"{table_path.stem}.{Path(INT8_MODEL).stem}.{digest}.faiss")


def search_settings(index: faiss.Index, config: OnlineConfig) -> faiss.Index:
    """The config's probes and re-scoring on an IVF index (built or read back); a flat index has none."""
    import faiss

    if isinstance(index, faiss.IndexRefine):
        index.k_factor = config.refine
        faiss.extract_index_ivf(index).nprobe = config.nprobe
    return index


def read_index(path: Path, config: OnlineConfig) -> faiss.Index:
    """A saved index with this config's search settings."""
    import faiss

    faiss.omp_set_num_threads(1)
    return search_settings(faiss.read_index(str(path)), config)


def save_indexes(root: Path, encoder: Encoder | None = None, config: OnlineConfig | None = None) -> list[Path]:
    """The global and pattern layers' dense indexes beside their tables in an artifact set being built: a process
    that loads the set (the service, a swap) reads them instead of encoding every source form (``bench rewrite``:
    2,000 forms in 0.05 instead of 4.3 s). Personal layers stay lazily encoded: small, and deleted with the user."""
    encoder = encoder or shared_encoder()
    config = config or OnlineConfig()
    written = []
    for relative, read in ((GLOBAL_TABLE, read_global), (PATTERN_TABLE, read_patterns)):
        path = FormIndex.from_table(read(root), encoder, config).save(root / relative)
        written += [path] if path is not None else []
    return written
