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

import hashlib
import itertools
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import jellyfish
import numpy as np
import polars as pl
from rapidfuzz import fuzz

from selflearn.controls import Controls, rule_id
from selflearn.home import Endpoint, Home
from selflearn.runtime.encoder import INT8_MODEL, Encoder, Vectors, shared_encoder
from selflearn.runtime.patterns import PLACEHOLDER, Delexicaliser, fill, only_devices, own_device_word, token_edits
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
from selflearn.text import normalize

if TYPE_CHECKING:
    import faiss

    from selflearn.artifacts import ArtifactStore


@dataclass(frozen=True)
class RankWeights:
    """The ranker as a documented weighted score (see docs/rewriting.md).

    ``similarity`` = cosine·w_cosine + string·w_string + phonetic·w_phonetic (normalised; 1 for an exact form hit,
    times ``untransferred`` when the rule's edit could not be located in the utterance and the whole target is used).
    ``evidence`` = base + (1 - base)·probability·support/(support + support_half), plus bonuses for the personal layer
    (the user's own history) and for a target that names an entity of *this* home/person the utterance lacked.
    score = similarity^sharpness · min(1, evidence).
    """

    cosine: float = 0.5
    """Weight of the embedding cosine in the similarity."""
    string: float = 0.25
    """Weight of the string similarity."""
    phonetic: float = 0.25
    """Weight of the phonetic similarity."""
    untransferred: float = 0.9
    """Similarity factor when the rule's edit could not be located in the utterance."""
    base: float = 0.5
    """Evidence of a rule before its probability and support count."""
    support_half: float = 1.0
    """Support at which a rule gets half of its probability's evidence."""
    personal_bonus: float = 0.1
    """Evidence added for a personal rule."""
    entity_bonus: float = 0.1
    """Evidence added when the utterance names an entity of the home."""
    sharpness: float = 2.0
    """Exponent on the similarity: higher punishes distant forms more."""


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


@dataclass(frozen=True)
class Rule:
    source: str
    """Failing form the rule rewrites."""
    target: str
    """What it rewrites it to."""
    probability: float
    """Absorption probability of the target from the source."""
    support: int
    """Repair chains behind the rule."""
    layer: str
    """The layer the rule is in: "personal" or "global"."""


@dataclass(frozen=True)
class Candidate:
    """One scored way to rewrite an utterance (kept whole for tracing and for the rewrite CLI)."""

    text: str
    """The rewritten utterance."""
    rule: Rule
    """The rule it came from."""
    cosine: float
    """Embedding cosine of the utterance and the rule's source."""
    string: float
    """String similarity of the two (0..1)."""
    phonetic: float
    """Phonetic similarity of the two (0..1)."""
    transferred: bool
    """The rule's edit was located in the utterance and applied there."""
    entity: bool
    """The utterance names an entity of the home."""
    score: float
    """The ranker's score (0..1)."""


@lru_cache(maxsize=200_000)
def _metaphone(form: str) -> str:
    return str(jellyfish.metaphone(form))


def transfer(query: str, source: str, target: str) -> str | None:
    """Apply the token edit source->target to ``query`` (all forms normalised); None if an edit has no place in it.

    Replacements and deletions need the source span in the query (deleting a repeated word also the repetition:
    "what what time is it" -> "what time is it" must not cut "what time is" to "time is"), insertions both
    neighbouring source tokens. An edit at the start (end) of the source applies only at the start (end) of the
    query: "is the weather" -> "what's the weather" must not turn "what is the weather" into "what what's the
    weather". The edits must sit in the query in the source's order, and an edit that moves words (inserts what
    another deletes) only where the words between them are the source's: "set the brightness the _area_ to
    _number_" -> "set the _area_ brightness to _number_" must not turn "set the brightness in the _area_ ..." into
    "set the _area_ brightness in ...". A word the edit doubles ("play some music" with "play music" -> "play some
    soul") is said once.
    """
    if query == source:
        return target
    q, s, t = query.split(), source.split(), target.split()
    placed: list[tuple[int, int, int, int, list[str]]] = []  # (query start, query end, source i1, i2, new tokens)
    for tag, i1, i2, j1, j2 in token_edits(source, target):
        new = t[j1:j2]
        if tag == "insert":
            if i1 == len(s):
                pos = len(q) if q[-1:] == s[-1:] else None
            elif i1 == 0:
                pos = 0 if q[:1] == s[:1] else None
            else:
                at = _find(q, s[i1 - 1 : i1 + 1])
                pos = None if at is None else at + 1
            if pos is None:
                return None
            if q[pos : pos + len(new)] == new or q[max(pos - len(new), 0) : pos] == new:
                continue  # already said
            placed.append((pos, pos, i1, i2, new))
        else:
            at = _find(q, s[i1:i2], start=i1 == 0, end=i2 == len(s))
            if at is None:
                return None
            end, n = at + i2 - i1, i2 - i1
            repeat = s[i1:i2] in (s[i2 : i2 + n], s[max(i1 - n, 0) : i1])
            if tag == "delete" and repeat and s[i1:i2] not in (q[end : end + n], q[max(at - n, 0) : at]):
                return None
            placed.append((at, end, i1, i2, new))
    moved = {w for _, _, _, _, new in placed for w in new} & {w for _, _, i1, i2, _ in placed for w in s[i1:i2]}
    for (_, end, _, i2, _), (at, _, i1, _, _) in itertools.pairwise(placed):
        if at < end or (moved and q[end:at] != s[i2:i1]):
            return None
    for at, end, _, _, new in reversed(placed):
        q = q[:at] + new + q[end:]
    said = set(zip(query.split(), query.split()[1:], strict=False))
    return " ".join(w for i, w in enumerate(q) if i == 0 or w != q[i - 1] or (w, w) in said)


def edit_anchors(source: str, target: str) -> set[str]:
    """Source tokens a query must contain for the rule's edit to have a place in it (see ``transfer``): the replaced
    or deleted tokens, or an inserted span's neighbours. A query with none of a layer's anchors skips encoding."""
    s = source.split()
    anchors: set[str] = set()
    for tag, i1, i2, _, _ in token_edits(source, target):
        if tag in ("replace", "delete"):
            anchors.update(s[i1:i2])
        elif tag == "insert":
            anchors.update(s[max(i1 - 1, 0) : i1 + 1])
    return anchors


def _find(tokens: list[str], span: list[str], *, start: bool = False, end: bool = False) -> int | None:
    """First position of ``span`` in ``tokens``; ``start``/``end``: only at the very start/end."""
    n = len(span)
    if start and end:
        return 0 if tokens == span else None
    if start:
        return 0 if tokens[:n] == span else None
    if end:
        return len(tokens) - n if n <= len(tokens) and tokens[len(tokens) - n :] == span else None
    for i in range(len(tokens) - n + 1):
        if tokens[i : i + n] == span:
            return i
    return None


FILLER = frozenset({"please", "now", "the", "a", "an", "um", "uh", "hey", "just", "can", "could", "you", "would"})
OPPOSITES = (("on", "off"), ("open", "close"), ("up", "down"), ("lock", "unlock"), ("start", "stop"))


def flips(query: str, text: str) -> bool:
    """Would the rewrite turn what was asked into its opposite ("turn off the lights" -> "turn on ...")? Such a rule
    comes from a person doing one thing and then the other, not from a repair; it is never applied."""
    said, sent = set(query.split()), set(text.split())
    for a, b in OPPOSITES:
        if (a in said and b not in said and b in sent and a not in sent) or (
            b in said and a not in said and a in sent and b not in sent
        ):
            return True
    return False


def home_entities(home: Home, user_id: str) -> list[str]:
    """Names that mean something in this home for this user: devices, areas, cities (normalised)."""
    names = [n for d in home.devices for n in d.names] + [n for a in home.areas for n in (a.name, *a.aliases)]
    names += [home.city] + [p.city or "" for p in home.people if p.id == user_id]
    return sorted({normalize(n) for n in names if n and normalize(n)}, key=len, reverse=True)


@lru_cache(maxsize=10_000)
def _name_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")


def _mentions(form: str, name: str) -> bool:
    """``name`` as whole words in ``form``; the substring test first, since most names are not there at all."""
    return name in form and _name_pattern(name).search(form) is not None


class Ranker:
    """Scores a (query, rule, retrieval) triple; pure, so tests and the bench can call it directly."""

    def __init__(self, weights: RankWeights) -> None:
        self.w = weights

    def score(
        self, query: str, rule: Rule, cosine: float, entities: Sequence[str], *, floor: float = 0.0
    ) -> Candidate | None:
        """The scored candidate, or None if the rule does not apply. ``floor``: a rule that could not reach it even
        with the entity bonus is dropped before the transfer (difflib: most of the cost when the neighbours are
        unrelated forms); the online path passes its threshold, below which it drops candidates anyway."""
        w = self.w
        exact = query == rule.source
        ratio = fuzz.ratio(query, rule.source)
        string = ratio / 100.0
        phonetic = fuzz.ratio(_metaphone(query), _metaphone(rule.source)) / 100.0
        if exact:
            similarity = 1.0
        else:
            similarity = (w.cosine * cosine + w.string * string + w.phonetic * phonetic) / (
                w.cosine + w.string + w.phonetic
            )
        evidence = w.base + (1 - w.base) * rule.probability * rule.support / (rule.support + w.support_half)
        bonus = w.personal_bonus * (rule.layer == "personal")
        if math.pow(max(similarity, 0.0), w.sharpness) * min(1.0, evidence + (bonus + w.entity_bonus)) < floor:
            return None
        text = transfer(query, rule.source, rule.target)
        transferred = text is not None
        if text is None:
            # The edit has no place in the query: the whole target is used only if the query is closer to the
            # failing form than to its fix (otherwise it is most likely a working variant already) and says
            # nothing the target would drop ("... to 19 degrees please" must not become "... to 18").
            said = set(query.split()) - set(rule.source.split()) - set(rule.target.split()) - FILLER
            if said or ratio <= fuzz.ratio(query, rule.target):
                return None
            text = rule.target
        if text == query or flips(query, text):
            return None
        similarity *= 1.0 if transferred else w.untransferred
        entity = any(_mentions(text, n) and not _mentions(query, n) for n in entities)
        evidence += bonus + w.entity_bonus * entity
        score = math.pow(max(similarity, 0.0), w.sharpness) * min(1.0, evidence)
        return Candidate(text, rule, cosine, string, phonetic, transferred, entity, score)


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
