"""Retrieval over what works: the long-tail fallback for requests the NLU fails on or barely understands.

Mined rules (``online.py``) only know forms somebody already repaired; a request nobody said before gets no rule.
This layer instead keeps, per home, an index of utterances known to *work* there, each with the reading (intent,
slots) the runtime gave it: the home's own canonical commands (the NLU's templates rendered with the home's
device, area and other names, kept only if the runtime executes them), the utterances that succeeded in that home
(result success and no defect signal afterwards), and the population's successful forms (k-anonymous over users and
homes). A failing or low-confidence request is encoded with the shared MiniLM encoder, its nearest entries come
from a faiss index (``online.build_index``), and a logistic ``Ranker`` over cosine, fuzzy and phonetic similarity,
entity overlap with the home, the speaker's own history, the home's intent prior and time of day scores each. The
best entry replaces the request only above the ranker's threshold; otherwise the runtime abstains (out-of-scope
requests must not become device actions). ``DAY0`` is the default; ``learners/retrieval_ranker.py`` fits an update
of it in ``selflearn learn`` on mined pairs (failing utterance -> the reading its rephrase got; weak labels only)
and publishes it only if it beats ``DAY0`` like with like on held-out pairs without lowering either bar.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import jellyfish
import numpy as np
import polars as pl
from rapidfuzz import fuzz

from selflearn import ids
from selflearn.home import Endpoint, Home
from selflearn.runtime.encoder import Encoder, Vectors, shared_encoder
from selflearn.runtime.form_index import OnlineConfig, build_index
from selflearn.runtime.index_cache import Day0, IndexCache, shared_cache
from selflearn.runtime.patterns import PLACEHOLDER, Delexicaliser
from selflearn.runtime.ranker import home_entities
from selflearn.runtime.rewrites import PERSONAL_DIR, Rewrite
from selflearn.runtime.transfer import flips
from selflearn.text import normalize

if TYPE_CHECKING:
    import faiss
from selflearn.runtime.known_commands import (
    SAMPLE_SPAN,
    Entry,
    canonical_commands,
    dry_run,
    indirect_commands,
    mentions,
)

RANKER_FILE = Path("retrieval") / "ranker.json"


SUCCESS_TABLE = Path("retrieval") / "successes.parquet"  # per home: text, local hour, count (no user ids)


GLOBAL_FORMS = Path("retrieval") / "global_forms.parquet"  # k-anonymous successful forms without names


PERSONAL_HISTORY = "retrieval.parquet"  # personal/<user_id>/: the user's own successes (forgotten with the user)


FEATURES = ("cosine", "fuzzy", "phonetic", "entity", "conflict", "own", "prior", "hour", "worked")


HISTORY = ("own", "prior", "hour", "worked")  # the features logs give (0 on day 0)


SOURCE = "retrieval"


_NUMBER = re.compile(r"\b\d+\b")


@dataclass(frozen=True)
class Ranker:
    """Logistic ranker: P(an entry is what the speaker meant) = sigmoid(bias + weights · features)."""

    weights: tuple[float, ...]
    """Feature weights, one per ``FEATURES`` entry, in that order."""
    bias: float
    """Logit of a candidate with every feature 0."""
    threshold: float
    """Abstain when the best candidate's probability is below this ..."""
    action_threshold: float
    """... or below this when the candidate acts on a device (out-of-scope must not)."""
    fitted_on: int = 0
    """Mined queries the weights were fitted on (0: the documented day-0 default)."""

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(features @ np.asarray(self.weights) + self.bias)))

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"features": FEATURES, **asdict(self)}, indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> Ranker:
        data = json.loads(path.read_text(encoding="utf-8"))
        if tuple(data["features"]) != FEATURES:
            raise ValueError(f"{path}: ranker features {data['features']} are not {list(FEATURES)}")
        return cls(
            tuple(float(w) for w in data["weights"]),
            float(data["bias"]),
            float(data["threshold"]),
            float(data["action_threshold"]),
            int(data.get("fitted_on", 0)),
        )

    def accepts(self, scored: Scored) -> bool:
        return scored.probability >= (self.action_threshold if scored.entry.acts else self.threshold)


# Day-0 ranker (docs/rewriting.md), printed by ``scripts/fit_day0_ranker.py`` (SLURP's even devel rows on
# willow_house): meaning first (cosine); naming another device, room or number than the entry hurts; the history
# weights (0 on day 0) are set by hand.
DAY0 = Ranker(
    weights=(15.6, 1.0, -0.8, -1.1, -5.6, 1.0, 1.0, 0.5, 0.5), bias=-5.0, threshold=0.92, action_threshold=0.98
)


@dataclass(frozen=True)
class RetrievalConfig:
    k: int = 12
    """Nearest entries the ranker scores."""
    per_template: int = 3
    """Canonical commands sampled per template (before the dry run)."""
    per_reading: int = 4
    """Canonical commands kept per reading (intent + slots): wordings, not name combinations."""
    per_indirect: int = 6
    """Renderings sampled per ``indirect.yaml`` pair and name filled in."""
    low_confidence: float = 0.5
    """A reading below this confidence counts as failing (the runtime asks retrieval)."""
    min_action_repairs: int = 2
    """A logged repair that acts on a device is indexed once said this often in the home."""
    min_users: int = 5
    """Global forms: k-anonymity over distinct users ..."""
    min_homes: int = 5
    """... and distinct homes."""
    ranker_queries: int = 400
    """Mined queries ``fit_ranker`` uses at most ..."""
    min_held_out: int = 50
    """Held-out mined queries needed before a fitted ranker may replace the day-0 one ..."""
    min_gain: float = 0.05
    """... and the utility it must gain over the day-0 ranker there, per held-out query."""
    ranker_homes: int = 3
    """... from at most this many homes (each home's index costs a dry run and encodings)."""
    online: OnlineConfig = field(default_factory=OnlineConfig)
    """faiss settings (``online.build_index``)."""


@dataclass(frozen=True)
class _Query:
    """Per-query inputs of the features."""

    said: list[str]  # home names the query says
    numbers: set[str]  # numbers it says
    metaphone: str  # its metaphone code
    own: set[str]  # texts that worked for the speaker before
    intents: dict[str, int]  # the home's logged successes per intent
    near: dict[str, int]  # the same within an hour of now (home time)


@dataclass(frozen=True)
class Scored:
    """A ranked candidate: the entry, its features (``FEATURES`` order) and probability."""

    entry: Entry
    """The candidate entry."""
    features: tuple[float, ...]
    """Its ranker features, in ``FEATURES`` order."""
    probability: float
    """The ranker's P(it is what the speaker meant)."""


@lru_cache(maxsize=100_000)
def _metaphone(text: str) -> str:
    return str(jellyfish.metaphone(text))


class HomeIndex:
    """One home's entries and their dense index (cosine = inner product of unit vectors)."""

    def __init__(
        self,
        home: Home,
        entries: Sequence[Entry],
        encoder: Encoder,
        config: RetrievalConfig,
        vectors: Vectors | None = None,
    ) -> None:
        """``vectors``: the entries' encodings where known (read from ``runtime.index_cache``), else encoded here."""
        self.home = home
        self.entries = list(entries)
        self.names = home_entities(home, "")
        self.tz = ZoneInfo(home.timezone)
        if vectors is None:
            vectors = encoder.encode([e.match for e in self.entries])
        self._index: faiss.Index | None = build_index(vectors, config.online) if self.entries else None

    def neighbours(self, vector: np.ndarray, k: int) -> list[tuple[Entry, float]]:
        if self._index is None:
            return []
        scores, ids = self._index.search(vector.reshape(1, -1), min(k, len(self.entries)))
        return [(self.entries[i], float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]


@dataclass
class History:
    """What the logs say worked: per home ((match, text) -> count, intent -> hour counts), per user (texts)."""

    home_texts: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)
    """Home -> (match, text) counts."""
    home_hours: dict[str, dict[str, Counter[int]]] = field(default_factory=dict)
    """Home -> intent -> local hours."""
    user_texts: dict[str, set[str]] = field(default_factory=dict)
    """User id -> texts that worked for them."""
    global_forms: list[tuple[str, str]] = field(default_factory=list)
    """Population forms: k-anonymous (match, text) pairs, no names."""


class Retrieval:
    """The runtime's retrieval fallback over many homes (an index per home, built on the home's first failure)."""

    def __init__(
        self,
        ranker: Ranker = DAY0,
        *,
        history: History | None = None,
        encoder: Encoder | None = None,
        config: RetrievalConfig | None = None,
        artifact_dir: Path | None = None,
        cache: IndexCache | None = None,
    ) -> None:
        """``cache``: where the homes' day-0 index parts are kept (default: the data dir's, ``shared_cache``)."""
        self.ranker = ranker
        self.history = history or History()
        self.encoder = encoder or shared_encoder()
        self.config = config or RetrievalConfig()
        self.artifact_dir = artifact_dir
        self.cache = cache or shared_cache()
        self._indexes: dict[str, HomeIndex] = {}
        self._users_loaded: set[str] = set()

    @classmethod
    def load(cls, artifact_dir: Path, *, encoder: Encoder | None = None, config: RetrievalConfig | None = None,
             cache: IndexCache | None = None) -> Retrieval:  # fmt: skip
        """The ranker, the homes' successes and the global forms of a published artifact set (day-0 parts where
        the set has none); personal histories are read on a user's first failing request."""
        ranker = Ranker.load(artifact_dir / RANKER_FILE) if (artifact_dir / RANKER_FILE).exists() else DAY0
        history = History()
        if (artifact_dir / SUCCESS_TABLE).exists():
            table = pl.read_parquet(artifact_dir / SUCCESS_TABLE)
            for row in table.iter_rows(named=True):
                pair = (row["match"], row["text"])
                history.home_texts.setdefault(row["home_id"], Counter())[pair] += int(row["count"])
                hours = history.home_hours.setdefault(row["home_id"], {}).setdefault(row["intent"], Counter())
                hours[int(row["hour"])] += int(row["count"])
        if (artifact_dir / GLOBAL_FORMS).exists():
            forms = pl.read_parquet(artifact_dir / GLOBAL_FORMS)
            history.global_forms = list(zip(forms["match"].to_list(), forms["text"].to_list(), strict=True))
        return cls(ranker, history=history, encoder=encoder, config=config, artifact_dir=artifact_dir, cache=cache)

    def index(self, home: Home) -> HomeIndex:
        """The home's index: canonical commands and indirect requests (from the cache, ``runtime.index_cache``),
        its logged successes and the global forms (each pair dry-run on its own, remembered by the cache for later
        artifact sets)."""
        found = self._indexes.get(home.id)
        if found is None or (found.home is not home and found.home != home):
            settings = {"per_template": self.config.per_template, "per_reading": self.config.per_reading,
                        "per_indirect": self.config.per_indirect, "span": SAMPLE_SPAN}  # fmt: skip
            key = self.cache.key(home, self.encoder.name, settings)
            day0 = self.cache.get(home, key, partial(self._day0, home))
            texts = {(t, t) for t in day0.texts}
            counts = self.history.home_texts.get(home.id, Counter())
            logged = [p for p in counts if p not in texts]
            known = texts | set(logged)
            pop = [p for p in self.history.global_forms if p not in known]

            def tried(source: str, pair: tuple[str, str]) -> list[Entry]:
                return self.cache.remember((key, source, *pair), partial(dry_run, home, [pair], source, fresh=True))

            entries = [Entry(**{**r, "names": tuple(r["names"])}) for r in day0.rows]
            entries += [e for pair in logged for e in tried("log", pair) if self._repeated(e, counts)]
            entries += [e for pair in pop for e in tried("global", pair)]
            vectors = np.concatenate([day0.vectors, self.encoder.encode([e.match for e in entries[len(day0.rows) :]])])
            found = self._indexes[home.id] = HomeIndex(home, entries, self.encoder, self.config, vectors)
        return found

    def _repeated(self, entry: Entry, counts: Counter[tuple[str, str]]) -> bool:
        """A repair that acts on a device must have been said ``min_action_repairs`` times: a one-off failing wording
        is often the recognizer's garble ("please set the thursday to am" -> the thermostat), which then sits next
        to out-of-scope requests ("do i have anything on this saturday") as a device action."""
        once = entry.acts and entry.match != entry.text
        return not once or counts[(entry.match, entry.text)] >= self.config.min_action_repairs

    def use(self, index: HomeIndex) -> None:
        """Serve its home from a prebuilt index (the bench builds one of generated vectors at 10k-1M entries)."""
        self._indexes[index.home.id] = index

    def _day0(self, home: Home) -> Day0:
        """The cached part of a home's index: its canonical commands and indirect requests that work, encoded."""
        texts = canonical_commands(home, self.config.per_template)
        canonical = [(t, t) for t in texts]
        said = set(canonical)
        indirect = [p for p in indirect_commands(home, self.config.per_indirect) if p not in said]
        entries = dry_run(home, canonical, "canonical", self.config.per_reading) + dry_run(home, indirect, "canonical")
        return Day0([asdict(e) for e in entries], self.encoder.encode([e.match for e in entries]), texts)

    def _user_texts(self, user_id: str) -> set[str]:
        if user_id not in self._users_loaded and self.artifact_dir is not None:
            self._users_loaded.add(user_id)
            try:
                path = ids.child_path(self.artifact_dir / PERSONAL_DIR, user_id) / PERSONAL_HISTORY
            except ValueError:
                return set()  # an id no file can carry has no saved history
            if path.exists():
                self.history.user_texts[user_id] = set(pl.read_parquet(path)["text"].to_list())
        return self.history.user_texts.get(user_id, set())

    def candidates(self, text: str, *, user_id: str, home: Home, now: datetime) -> list[Scored]:
        """The nearest working entries for ``text``, ranked, best first (all of them, above threshold or not)."""
        query = normalize(text)
        if not query:
            return []
        index = self.index(home)
        hits = index.neighbours(self.encoder.encode_one(query), self.config.k)
        if not hits:
            return []
        context = self._context(query, index, user_id, now)
        feats = np.array([self.features(query, e, c, context) for e, c in hits], dtype=np.float64)
        probs = self.ranker.probabilities(feats)
        ranked = [Scored(e, tuple(f), float(p)) for (e, _), f, p in zip(hits, feats.tolist(), probs, strict=True)]
        return sorted(ranked, key=lambda s: -s.probability)

    def _context(self, query: str, index: HomeIndex, user_id: str, now: datetime) -> _Query:
        """What the features need of the query, computed once per query."""
        hours = self.history.home_hours.get(index.home.id, {})
        hour = now.astimezone(index.tz).hour
        return _Query(
            said=[n for n in index.names if mentions(query, n)],
            numbers=set(_NUMBER.findall(query)),
            metaphone=_metaphone(query),
            own=self._user_texts(user_id),
            intents={i: sum(c.values()) for i, c in hours.items()},
            near={i: sum(c.get((hour + d) % 24, 0) for d in (-1, 0, 1)) for i, c in hours.items()},
        )

    def features(self, query: str, entry: Entry, cosine: float, q: _Query) -> tuple[float, ...]:
        """``FEATURES`` for one (query, entry): all in [0, 1]."""
        fuzzy = fuzz.token_set_ratio(query, entry.match) / 100.0
        phonetic = fuzz.ratio(q.metaphone, _metaphone(entry.match)) / 100.0
        if entry.names:
            entity = sum(fuzz.partial_ratio(n, query) for n in entry.names) / (100.0 * len(entry.names))
        else:
            entity = 0.0 if q.said else 1.0
        other_name = any(all(n not in e and e not in n for e in entry.names) for n in q.said)
        other_number = bool(q.numbers - set(_NUMBER.findall(entry.text)))
        total, all_near = sum(q.intents.values()), sum(q.near.values())
        return (
            max(cosine, 0.0), fuzzy, phonetic, entity, float(other_name or other_number), float(entry.text in q.own),
            q.intents.get(entry.intent, 0) / total if total else 0.0,
            q.near.get(entry.intent, 0) / all_near if all_near else 0.0, float(entry.source != "canonical"),
        )  # fmt: skip

    def best(self, text: str, *, user_id: str, home: Home, now: datetime) -> Scored | None:
        """The top candidate if the ranker accepts it and it changes the request without flipping it."""
        query = normalize(text)
        for scored in self.candidates(text, user_id=user_id, home=home, now=now)[:1]:
            if self.ranker.accepts(scored) and scored.entry.text != query:
                return None if flips(query, scored.entry.text) else scored
        return None

    def retrieve(self, text: str, *, user_id: str, home: Home, endpoint: Endpoint, now: datetime) -> Rewrite | None:
        best = self.best(text, user_id=user_id, home=home, now=now)
        return None if best is None else Rewrite(best.entry.text, SOURCE, round(best.probability, 4))


WORKED_SCHEMA = {
    "home_id": pl.String,
    "user_id": pl.String,
    "match": pl.String,  # what a request is compared with (the failing wording of a repair)
    "text": pl.String,  # what worked
    "intent": pl.String,
    "hour": pl.Int64,  # local hour of the turn
}


def what_worked(scored: pl.DataFrame, queries: pl.DataFrame, homes: Sequence[Home]) -> pl.DataFrame:
    """What the logs say works, one row per turn (``WORKED_SCHEMA``): turns that succeeded (result success, no
    defect signal; ``match`` = ``text`` = what the NLU got) and failing turns a person repaired (``match`` = their
    failing wording, ``text`` = the wording their chain succeeded with, from ``mined_queries``); hours are the
    home's local time."""
    said = pl.coalesce(pl.col("rewritten_text"), pl.col("asr_text"))
    ok = scored.filter((pl.col("result_status") == "success") & ~pl.col("defect") & ~pl.col("meta"))
    ok = ok.select("home_id", "user_id", "ts", "nlu_intent", match=said, text=said)
    repaired = queries.filter(pl.col("target_form").is_not_null()).select(
        "home_id",
        "user_id",
        "ts",
        nlu_intent=pl.col("target").str.split("|").list.first(),
        match=pl.col("asr_text"),
        text=pl.col("target_form"),
    )
    tz = {h.id: ZoneInfo(h.timezone) for h in homes}
    out = []
    for r in ok.to_dicts() + repaired.to_dicts():
        match, text = normalize(r["match"] or ""), normalize(r["text"] or "")
        if match and text and r["nlu_intent"] and r["home_id"]:
            ts = r["ts"] if r["ts"].tzinfo else r["ts"].replace(tzinfo=UTC)
            hour = ts.astimezone(tz[r["home_id"]]).hour if r["home_id"] in tz else ts.hour
            row = {"home_id": r["home_id"], "user_id": r["user_id"], "match": match, "text": text}
            out.append(row | {"intent": r["nlu_intent"], "hour": hour})
    return pl.DataFrame(out, schema=WORKED_SCHEMA)


def global_forms(worked: pl.DataFrame, homes: Sequence[Home], config: RetrievalConfig) -> list[tuple[str, str]]:
    """(match, text) pairs of at least ``min_users`` users in ``min_homes`` homes that name nothing of a home
    (delexicalised with each home's names: a form with a placeholder is specific to its home)."""
    delex = {h.id: Delexicaliser.for_home(h) for h in homes}
    named = [
        h not in delex or any(PLACEHOLDER.search(delex[h].apply(t)[0]) is not None for t in (m, t))
        for h, m, t in zip(worked["home_id"], worked["match"], worked["text"], strict=True)
    ]
    plain = worked.filter(~pl.Series(named, dtype=pl.Boolean)) if worked.height else worked
    kept = plain.group_by("match", "text").agg(users=pl.col("user_id").n_unique(), homes=pl.col("home_id").n_unique())
    kept = kept.filter((pl.col("users") >= config.min_users) & (pl.col("homes") >= config.min_homes))
    return sorted(zip(kept["match"].to_list(), kept["text"].to_list(), strict=True))


def history_of(worked: pl.DataFrame, homes: Sequence[Home], config: RetrievalConfig) -> History:
    """The ``History`` of a ``what_worked`` frame (what ``Retrieval.load`` reads back from the artifact set)."""
    history = History(global_forms=global_forms(worked, homes, config))
    for r in worked.iter_rows(named=True):
        history.home_texts.setdefault(r["home_id"], Counter())[(r["match"], r["text"])] += 1
        history.home_hours.setdefault(r["home_id"], {}).setdefault(r["intent"], Counter())[r["hour"]] += 1
        history.user_texts.setdefault(r["user_id"], set()).add(r["text"])
    return history


SUCCESS_KEYS = ("home_id", "match", "text", "intent", "hour")  # ``SUCCESS_TABLE``'s columns, with ``count``


def successes(worked: pl.DataFrame) -> pl.DataFrame:
    """A ``what_worked`` frame per home without user ids: ``SUCCESS_KEYS`` and how often (``count``)."""
    return worked.group_by(SUCCESS_KEYS).agg(count=pl.len()).sort(SUCCESS_KEYS)


def save_history(root: Path, table: pl.DataFrame, history: History) -> list[Path]:
    """Per home what worked (``successes``), the global forms, and each user's own texts under
    ``personal/<user>/`` (deleted with the user by ``ArtifactStore.forget_user``)."""
    (root / SUCCESS_TABLE).parent.mkdir(parents=True, exist_ok=True)
    table.write_parquet(root / SUCCESS_TABLE)
    matches, texts = [m for m, _ in history.global_forms], [t for _, t in history.global_forms]
    pl.DataFrame({"match": matches, "text": texts}, schema={"match": pl.String, "text": pl.String}).write_parquet(
        root / GLOBAL_FORMS
    )
    written = [root / SUCCESS_TABLE, root / GLOBAL_FORMS]
    for user, own in history.user_texts.items():
        try:
            path = ids.child_path(root / PERSONAL_DIR, user) / PERSONAL_HISTORY
        except ValueError:
            continue  # an id no file can carry keeps no personal history
        path.parent.mkdir(parents=True, exist_ok=True)
        pl.DataFrame({"text": sorted(own)}, schema={"text": pl.String}).write_parquet(path)
        written.append(path)
    return written
