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
requests must not become device actions). ``DAY0`` is the default; ``fit_ranker`` fits an update of it in
``selflearn learn`` on mined pairs (failing utterance -> the reading its rephrase got; weak labels only) and
publishes it only if it beats ``DAY0`` like with like on held-out pairs without lowering the device-action bar.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import jellyfish
import numpy as np
import polars as pl
from hassil.sample import sample_sentence
from rapidfuzz import fuzz

from selflearn import ids
from selflearn.home import Endpoint, Home
from selflearn.pipeline.nlu import compiled, home_slot_lists
from selflearn.pipeline.runtime import Runtime
from selflearn.rewrite import PERSONAL_DIR, Rewrite
from selflearn.rewrite.encoder import Encoder, Vectors, shared_encoder
from selflearn.rewrite.mining import MiningConfig, chains, linked_requests
from selflearn.rewrite.online import OnlineConfig, build_index, flips, home_entities
from selflearn.rewrite.patterns import PLACEHOLDER, Delexicaliser
from selflearn.runtime.index_cache import Day0, IndexCache, shared_cache
from selflearn.text import normalize

if TYPE_CHECKING:
    import faiss

RANKER_FILE = Path("retrieval") / "ranker.json"
SUCCESS_TABLE = Path("retrieval") / "successes.parquet"  # per home: text, local hour, count (no user ids)
GLOBAL_FORMS = Path("retrieval") / "global_forms.parquet"  # k-anonymous successful forms without names
PERSONAL_HISTORY = "retrieval.parquet"  # personal/<user_id>/: the user's own successes (forgotten with the user)
FEATURES = ("cosine", "fuzzy", "phonetic", "entity", "conflict", "own", "prior", "hour", "worked")
HISTORY = ("own", "prior", "hour", "worked")  # the features logs give (0 on day 0)
SOURCE = "retrieval"
SAMPLE_SPAN = 24  # renderings per template that ``canonical_commands`` picks from
_NUMBER = re.compile(r"\b\d+\b")
_RANGE = re.compile(r"\{\w+\}")  # an unexpanded hassil range slot


@dataclass(frozen=True)
class Ranker:
    """Logistic ranker: P(an entry is what the speaker meant) = sigmoid(bias + weights · features)."""

    weights: tuple[float, ...]  # one per ``FEATURES`` entry, in that order
    bias: float  # logit of a candidate with every feature 0
    threshold: float  # abstain when the best candidate's probability is below this ...
    action_threshold: float  # ... or below this when the candidate acts on a device (out-of-scope must not)
    fitted_on: int = 0  # mined queries the weights were fitted on (0: the documented day-0 default)

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
    k: int = 12  # nearest entries the ranker scores
    per_template: int = 3  # canonical commands sampled per template (before the dry run)
    per_reading: int = 4  # canonical commands kept per reading (intent + slots): wordings, not name combinations
    low_confidence: float = 0.5  # a reading below this confidence counts as failing (the runtime asks retrieval)
    min_users: int = 5  # global forms: k-anonymity over distinct users ...
    min_homes: int = 5  # ... and distinct homes
    ranker_queries: int = 400  # mined queries ``fit_ranker`` uses at most ...
    min_held_out: int = 50  # held-out mined queries needed before a fitted ranker may replace the day-0 one ...
    min_gain: float = 0.05  # ... and the utility it must gain over the day-0 ranker there, per held-out query
    ranker_homes: int = 3  # ... from at most this many homes (each home's index costs a dry run and encodings)
    online: OnlineConfig = field(default_factory=OnlineConfig)  # faiss settings (``online.build_index``)


@dataclass(frozen=True)
class Entry:
    """One utterance that works in a home, with the reading the runtime gave it."""

    text: str  # normalised utterance that works (what a request is rewritten to)
    match: str  # what a request is compared with: ``text``, or a failing wording a person repaired into ``text``
    intent: str  # the runtime's intent for it
    slots: str  # its slots as sorted JSON (readings compare by intent + slots)
    names: tuple[str, ...]  # the home's device/area/city names it says
    source: str  # "canonical" (templates) | "log" (worked or was repaired in this home) | "global" (population)
    acts: bool  # the dry run changed a device (a wrong pick of it is a false action, not a wrong answer)


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
    features: tuple[float, ...]
    probability: float


def canonical_commands(home: Home, per_template: int, *, seed: int = 0) -> list[str]:
    """The NLU's templates rendered with this home's names: up to ``per_template`` seeded picks among the first
    ``SAMPLE_SPAN`` renderings of every template without a free-text slot (hassil ``sample_sentence``; taking the
    first renderings per intent would give one template's name combinations), normalised, deduplicated. Number
    ranges are not expanded (hassil enumerates every value: 10x the time) but filled with a seeded number."""
    intents = compiled()
    slot_lists = {**intents.slot_lists, **home_slot_lists(home)}
    rng = random.Random(seed)
    out: list[str] = []
    for intent in intents.intents.values():
        for data in intent.data:
            rules = {**intents.expansion_rules, **data.expansion_rules}
            for sentence in data.sentences:
                if any(name in data.wildcard_list_names for name in sentence.list_names(rules)):
                    continue
                rendered = sample_sentence(sentence, slot_lists, rules, language="en", expand_ranges=False)
                texts = list(itertools.islice(rendered, SAMPLE_SPAN))
                out += rng.sample(texts, min(per_template, len(texts)))
    filled = (_RANGE.sub(lambda _: str(rng.randint(2, 60)), text) for text in out)
    return list(dict.fromkeys(n for text in filled if (n := normalize(text))))


def dry_run(
    home: Home, pairs: Iterable[tuple[str, str]], source: str, per_reading: int | None = None, *, fresh: bool = False
) -> list[Entry]:
    """Entries for the (match, text) pairs whose text a throwaway runtime of this home executes successfully (with
    the reading it gave it), at most ``per_reading`` per reading; ``fresh``: each pair on its own runtime (the
    home's configured device states), so an entry does not depend on the pairs before it. Only template matches
    count (not the loose device-command fallback). Renderings that work but mean nothing are dropped: a free-text
    slot filled with one of the home's names ("what's the weather like for the bedroom lights"), a device named with
    another room ("turn the living room lights in the kitchen off")."""
    runtime = Runtime(home)
    endpoint = home.endpoints[0].id
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    names = home_entities(home, "")
    ids = {d.id for d in home.devices} | {a.id for a in home.areas}
    rooms = {d.id: d.area for d in home.devices}
    kept: Counter[str] = Counter()
    out = []
    for match, text in pairs:
        runtime = Runtime(home) if fresh else runtime
        interpretation = runtime.interpret(text, user_id="retrieval", endpoint_id=endpoint, now=now)
        turn = interpretation.turn
        if turn.result_status != "success" or not turn.nlu_intent or interpretation.stages["nlu"]["loose"]:
            continue
        values = [f" {normalize(v)} " for v in turn.nlu_slots.values() if isinstance(v, str) and v not in ids]
        slots = json.dumps(turn.nlu_slots, sort_keys=True)
        key = f"{turn.nlu_intent}|{slots}"
        if any(f" {n} " in v for v in values for n in names) or (per_reading is not None and kept[key] >= per_reading):
            continue
        device, area = turn.nlu_slots.get("name"), turn.nlu_slots.get("area")
        if area is not None and device in rooms and rooms[device] != area:
            continue
        kept[key] += 1
        said = tuple(n for n in names if _mentions(text, n))
        acts = interpretation.status == "success" and bool(interpretation.stages["execute"].get("changed"))
        out.append(Entry(text, match, turn.nlu_intent, slots, said, source, acts))
    return out


@lru_cache(maxsize=100_000)
def _metaphone(text: str) -> str:
    return str(jellyfish.metaphone(text))


def _mentions(text: str, name: str) -> bool:
    return f" {name} " in f" {text} "


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

    home_texts: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)  # home -> (match, text) counts
    home_hours: dict[str, dict[str, Counter[int]]] = field(default_factory=dict)  # home -> intent -> local hours
    user_texts: dict[str, set[str]] = field(default_factory=dict)  # user id -> texts that worked for them
    global_forms: list[tuple[str, str]] = field(default_factory=list)  # k-anonymous (match, text), no names


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
        """The home's index: canonical commands (from the cache, ``runtime.index_cache``), its logged successes and
        the global forms (each pair dry-run on its own, remembered by the cache for later artifact sets)."""
        found = self._indexes.get(home.id)
        if found is None or (found.home is not home and found.home != home):
            settings = {"per_template": self.config.per_template, "per_reading": self.config.per_reading,
                        "span": SAMPLE_SPAN}  # fmt: skip
            key = self.cache.key(home, self.encoder.name, settings)
            day0 = self.cache.get(home, key, partial(self._day0, home))
            texts = {(t, t) for t in day0.texts}
            logged = [p for p in self.history.home_texts.get(home.id, {}) if p not in texts]
            pop = [p for p in self.history.global_forms if p not in texts | set(logged)]
            tried = [
                self.cache.remember((key, source, *pair), partial(dry_run, home, [pair], source, fresh=True))
                for source, pairs in (("log", logged), ("global", pop))
                for pair in pairs
            ]
            entries = [Entry(**{**r, "names": tuple(r["names"])}) for r in day0.rows] + [e for t in tried for e in t]
            vectors = np.concatenate([day0.vectors, self.encoder.encode([e.match for e in entries[len(day0.rows) :]])])
            found = self._indexes[home.id] = HomeIndex(home, entries, self.encoder, self.config, vectors)
        return found

    def use(self, index: HomeIndex) -> None:
        """Serve its home from a prebuilt index (the bench builds one of generated vectors at 10k-1M entries)."""
        self._indexes[index.home.id] = index

    def _day0(self, home: Home) -> Day0:
        """The cached part of a home's index: its canonical commands that work, encoded."""
        texts = canonical_commands(home, self.config.per_template)
        entries = dry_run(home, [(t, t) for t in texts], "canonical", self.config.per_reading)
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
            said=[n for n in index.names if _mentions(query, n)],
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


def save_history(root: Path, worked: pl.DataFrame, history: History) -> list[Path]:
    """Per home what worked without user ids, the global forms, and each user's own texts under
    ``personal/<user>/`` (deleted with the user by ``ArtifactStore.forget_user``)."""
    (root / SUCCESS_TABLE).parent.mkdir(parents=True, exist_ok=True)
    keys = ["home_id", "match", "text", "intent", "hour"]
    worked.group_by(keys).agg(count=pl.len()).sort(keys).write_parquet(root / SUCCESS_TABLE)
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


def mined_queries(scored: pl.DataFrame, links: pl.Series) -> pl.DataFrame:
    """Weak labels: per failing request of a rephrase chain, the reading the chain ended in (``target``:
    intent|slots of the success) and its wording (``target_form``), or nulls when the person gave up (nothing
    should be retrieved for it)."""
    steps = chains(scored, links).join(scored.select("turn_id", "home_id", "asr_text"), on="turn_id", how="left")
    return steps.select("turn_id", "user_id", "home_id", "ts", "asr_text", "chain", "target", "target_form")


def fit_ranker(
    queries: pl.DataFrame, retrieval: Retrieval, homes: Sequence[Home], *, seed: int = 0
) -> tuple[Ranker, dict[str, float]]:
    """The ranker ``learn`` publishes: an update of the day-0 ranker on the candidates of mined failing requests
    (label: the candidate has the intent, device and room the person's rephrase got) of 70 % of the chains, fitted
    by ``prior_fit`` (Gaussian prior centred on the day-0 weights and bias, its strength cross-validated on those
    chains), so a weight moves only as far as the weak labels give evidence. On the other 30 % the thresholds of
    the update *and* of the day-0 weights are chosen alike to maximise ``utility`` (a gave-up request's accepted
    candidate counts as wrong); the update replaces the day-0 ranker only if it gains ``min_gain`` utility per
    held-out request over the day-0 weights so re-thresholded and its device-action threshold is not below day-0's.
    Why like with like: a previous rule compared the update's tuned thresholds with day-0's documented ones, and an
    update that abstained on nearly everything (0.5 against -44.5 on simulated failures) won by its thresholds
    alone and cut real commands' accuracy from 0.562 to 0.210. Fewer than 20 positive and 20 negative candidates,
    or fewer than ``min_held_out`` held-out requests, keep the day-0 ranker."""
    by_home = {h.id: h for h in homes}
    rows = queries.filter(pl.col("home_id").is_in(list(by_home))).with_columns(held=held_out(pl.col("chain")))
    if rows.height > retrieval.config.ranker_queries:
        rows = rows.sample(retrieval.config.ranker_queries, seed=seed)
    feats: list[tuple[float, ...]] = []
    labels: list[int] = []
    acts: list[bool] = []
    group: list[int] = []
    held: list[bool] = []
    for q, r in enumerate(rows.iter_rows(named=True)):
        ts = r["ts"] if r["ts"].tzinfo else r["ts"].replace(tzinfo=UTC)
        for s in retrieval.candidates(r["asr_text"] or "", user_id=r["user_id"], home=by_home[r["home_id"]], now=ts):
            feats.append(s.features)
            labels.append(int(r["target"] is not None and same_request(s.entry, r["target"])))
            acts.append(s.entry.acts)
            group.append(q)
            held.append(bool(r["held"]))
    x, y, a, g, h = np.array(feats), np.array(labels), np.array(acts), np.array(group), np.array(held)
    summary = {"queries": float(rows.height), "candidates": float(len(y)), "positives": float(y.sum())}
    enough = len(np.unique(g[h])) >= retrieval.config.min_held_out if len(y) else False
    if not enough or y[~h].sum() < 20 or (1 - y[~h]).sum() < 20:
        return retrieval.ranker, summary | {"fitted": 0.0}
    bias, weights, strength = prior_fit(x[~h], y[~h], g[~h], DAY0)
    fitted = Ranker(weights, bias, 0.5, 0.5, rows.height)

    def tops(ranker: Ranker) -> list[tuple[float, bool, int]]:
        """Per held-out request: its top candidate's probability, whether it acts, whether it is right."""
        probs = ranker.probabilities(x[h])
        out = []
        for q in np.unique(g[h]):
            i = int(np.argmax(np.where(g[h] == q, probs, -1.0)))
            out.append((float(probs[i]), bool(a[h][i]), int(y[h][i])))
        return out

    chosen, value, day0 = judge(fitted, tops(fitted), tops(DAY0), retrieval.config.min_gain)
    summary |= {
        "held_out_utility": value,
        "held_out_utility_day0": day0,
        "held_out_utility_day0_documented": utility(tops(DAY0), DAY0.threshold, DAY0.action_threshold),
        "prior_strength": strength,
        "weight_shift": float(np.abs(np.subtract(weights, DAY0.weights)).max()),
    }
    return chosen, summary | {"fitted": float(chosen is not DAY0)}


def judge(
    fitted: Ranker,
    fitted_tops: Sequence[tuple[float, bool, int]],
    day0_tops: Sequence[tuple[float, bool, int]],
    min_gain: float,
) -> tuple[Ranker, float, float]:
    """The ranker to publish and the held-out utilities of the update and of the day-0 weights, from each one's top
    candidates (probability, acts, right) per held-out request, both re-thresholded by ``choose_thresholds``: the
    update with its thresholds if it gains ``min_gain`` per request and its action threshold is not below day-0's,
    else ``DAY0`` as documented (a gain won by thresholds alone is no reason to trust weights)."""
    threshold, action_threshold, value = choose_thresholds(fitted_tops)
    *_, day0 = choose_thresholds(day0_tops)
    wins = value - day0 >= min_gain * len(fitted_tops) and action_threshold >= DAY0.action_threshold
    return (replace(fitted, threshold=threshold, action_threshold=action_threshold) if wins else DAY0), value, day0


PRIOR_STRENGTHS = (0.001, 0.01, 0.1, 1.0, 10.0)  # per-candidate L2 toward day-0 that ``prior_fit`` picks from
FOLDS = 5  # ``prior_fit``'s cross-validation folds (by request)


def prior_fit(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, prior: Ranker
) -> tuple[float, tuple[float, ...], float]:
    """Bias, weights and prior strength of a logistic ranker fitted as a regularised update of ``prior``: the
    penalty pulls bias and weights toward ``prior``'s; its strength is the strongest of ``PRIOR_STRENGTHS`` whose
    held-out log-loss in cross-validation by request is within one standard error of the lowest (the usual
    one-standard-error rule). Few or noisy weak labels thus leave the prior's weights (fitted on real wordings)
    where they are; only evidence that holds across folds moves one."""
    centre = np.array([prior.bias, *prior.weights])
    fold = groups % FOLDS
    folds = [f for f in range(FOLDS) if (fold == f).any() and (fold != f).any()]

    def held_losses(strength: float) -> np.ndarray:
        out = []
        for f in folds:
            train, test = fold != f, fold == f
            theta = _map_logistic(x[train], y[train], centre, strength)
            z = theta[0] + x[test] @ theta[1:]
            out.append(float(np.mean(_balance(y[test]) * (np.logaddexp(0.0, z) - y[test] * z))))
        return np.array(out)

    losses = {s: held_losses(s) for s in PRIOR_STRENGTHS}
    best = min(losses, key=lambda s: losses[s].mean())
    bound = losses[best].mean() + losses[best].std(ddof=1) / np.sqrt(len(folds)) if len(folds) > 1 else np.inf
    strength = max(s for s in PRIOR_STRENGTHS if losses[s].mean() <= bound)
    theta = _map_logistic(x, y, centre, strength)
    return float(theta[0]), tuple(float(w) for w in theta[1:]), strength


def _balance(y: np.ndarray) -> np.ndarray:
    """Per-candidate weights that count both classes alike (as the day-0 fit's ``class_weight="balanced"``)."""
    return np.where(y == 1, len(y) / (2.0 * max(y.sum(), 1)), len(y) / (2.0 * max((1 - y).sum(), 1)))


def _map_logistic(x: np.ndarray, y: np.ndarray, centre: np.ndarray, strength: float) -> np.ndarray:
    """(bias, weights) minimising the classes-balanced mean log-loss + strength/2 · |theta - centre|² (L-BFGS)."""
    from scipy.optimize import minimize

    balance = _balance(y) / len(y)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] + x @ theta[1:]
        p = 1.0 / (1.0 + np.exp(-z))
        d = theta - centre
        value = float(np.sum(balance * (np.logaddexp(0.0, z) - y * z)) + 0.5 * strength * d @ d)
        grad_z = balance * (p - y)
        return value, np.concatenate([[grad_z.sum()], x.T @ grad_z]) + strength * d

    return np.asarray(minimize(loss, centre, jac=True, method="L-BFGS-B").x)


def same_request(entry: Entry, target: str) -> bool:
    """The entry's reading has the target reading's intent and names the same device and room where it names one."""
    intent, _, slots_json = target.partition("|")
    if entry.intent != intent:
        return False
    want = json.loads(slots_json) if slots_json else {}
    have = json.loads(entry.slots)
    return all(have.get(k) == want[k] for k in ("name", "area") if k in want)


WRONG_COST = 0.5  # the request failed anyway: a wrong answer costs little more than "sorry" ...
WRONG_ACTION_COST = 3.0  # ... a wrong device action three right ones


def utility(tops: Sequence[tuple[float, bool, int]], threshold: float, action_threshold: float) -> float:
    """Right rewrites minus the cost of wrong ones among the top candidates (probability, acts, right) accepted."""
    value = 0.0
    for p, acts, right in tops:
        if p >= (action_threshold if acts else threshold):
            value += 1.0 if right else -(WRONG_ACTION_COST if acts else WRONG_COST)
    return value


def choose_thresholds(tops: Sequence[tuple[float, bool, int]]) -> tuple[float, float, float]:
    """The (threshold, action threshold) in 0.5..0.99 with the highest ``utility`` (ties: the stricter pair)."""
    grid = [round(0.5 + 0.01 * i, 2) for i in range(50)]
    best_t = max(reversed(grid), key=lambda t: utility([x for x in tops if not x[1]], t, 1.0))
    best_a = max(reversed(grid), key=lambda t: utility([x for x in tops if x[1]], 1.0, t))
    return best_t, best_a, utility(tops, best_t, best_a)


def fit_retrieval(
    scored: pl.DataFrame,
    links: pl.Series | None,
    homes: Sequence[Home],
    config: RetrievalConfig,
    mining: MiningConfig,
    *,
    seed: int = 0,
) -> tuple[Callable[[Path], list[Path]], dict[str, float]]:
    """``learn``'s retrieval part: the logged successes, the global forms and the ranker fitted on mined pairs of
    the homes with the most of them (without home configurations: the day-0 ranker). Returns the artifact writer
    and a summary."""
    ranker, summary = DAY0, {"fitted": 0.0}
    if not scored.height:
        worked = pl.DataFrame(schema=WORKED_SCHEMA)
        history = History()
    else:
        frame, links = linked_requests(scored, links, mining)
        queries = mined_queries(frame, links)
        worked = what_worked(frame, queries, homes)
        history = history_of(worked, homes, config)
        if homes:
            busiest = queries.group_by("home_id").len().sort("len", "home_id", descending=True)["home_id"].to_list()
            chosen = [h for h in homes if h.id in set(busiest[: config.ranker_homes])]
            # the held-out chains' own repairs stay out of the index the ranker is chosen on
            seen = what_worked(frame, queries.filter(~held_out(pl.col("chain"))), homes)
            retrieval = Retrieval(DAY0, history=history_of(seen, homes, config), config=config)
            ranker, summary = fit_ranker(queries, retrieval, chosen, seed=seed)

    def write(root: Path) -> list[Path]:
        return [ranker.save(root / RANKER_FILE), *save_history(root, worked, history)]

    repairs = int((worked["match"] != worked["text"]).sum()) if worked.height else 0
    summary |= {
        "worked": float(worked.height),
        "repairs": float(repairs),
        "global_forms": float(len(history.global_forms)),
        "threshold": ranker.threshold,
        "action_threshold": ranker.action_threshold,
    }
    return write, summary


def held_out(chain: pl.Expr) -> pl.Expr:
    """The chains ``fit_ranker`` holds out to choose the ranker and its thresholds (3 in 10, by chain id)."""
    return chain % 10 < 3
