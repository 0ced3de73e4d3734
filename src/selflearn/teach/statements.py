"""What people tell the assistant about themselves, parsed: tastes (team, cuisine, music), names, places, phrases."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from rapidfuzz import fuzz, process

from selflearn import paths
from selflearn.home import Home
from selflearn.schema import PreferenceKind
from selflearn.text import normalize

VOCABULARY_FILE = paths.PACKAGE_DATA / "teach" / "vocabulary.yaml"


TASTE_KINDS: tuple[PreferenceKind, ...] = ("team", "cuisine", "music_genre")


KIND_WORDS: dict[PreferenceKind, str] = {
    "team": "team",
    "cuisine": "kind of food",
    "music_genre": "kind of music",
    "place": "place",
    "device_alias": "device name",
    "phrase": "phrase",
}


FUZZY_CUTOFF = 85.0  # taken without asking


CONFIRM_CUTOFF = 70.0  # close enough to offer as "Did you mean ...?"


DEVICE_CUTOFF = 70.0


Source = Literal["statement", "guided", "moment", "correction"]


@dataclass(frozen=True)
class Vocabulary:
    """Alias form -> the (kind, canonical value) pairs it may mean. More than one pair means: ask which."""

    index: dict[str, frozenset[tuple[PreferenceKind, str]]]
    """Normalised alias -> the (kind, canonical value) pairs it may mean."""

    @classmethod
    def from_file(cls, path: Path = VOCABULARY_FILE) -> Vocabulary:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        index: dict[str, set[tuple[PreferenceKind, str]]] = {}

        def add(alias: str, kind: PreferenceKind, canonical: str) -> None:
            form = normalize(alias)
            if form:
                index.setdefault(form, set()).add((kind, canonical))

        for section, entries in raw.items():
            kind: PreferenceKind = "team" if section.startswith("team") else section
            for canonical, aliases in entries.items():
                add(canonical, kind, canonical)
                for alias in aliases:
                    add(alias, kind, canonical)
                words = canonical.split()
                if section == "team" and len(words) >= 2:
                    add(words[-1], kind, canonical)  # nickname: "Warriors"
                    add(" ".join(words[:-1]), kind, canonical)  # city: "Golden State" (may be ambiguous)
        return cls({form: frozenset(pairs) for form, pairs in index.items()})

    def lookup(
        self, phrase: str, kinds: Sequence[PreferenceKind] = TASTE_KINDS, *, cutoff: float = FUZZY_CUTOFF
    ) -> list[tuple[PreferenceKind, str]]:
        """Exact alias first, then the closest aliases by edit ratio (typos, ASR slips); [] when nothing is close."""
        form = _strip_filler(normalize(phrase))
        if not form:
            return []
        exact = [pair for pair in self.index.get(form, ()) if pair[0] in kinds]
        if exact:
            return sorted(exact)
        choices = [alias for alias, pairs in self.index.items() if any(k in kinds for k, _ in pairs)]
        hits = process.extract(form, choices, scorer=fuzz.ratio, score_cutoff=cutoff, limit=5)
        if not hits:
            return []
        best = hits[0][1]
        found = {pair for alias, score, _ in hits if score == best for pair in self.index[alias] if pair[0] in kinds}
        return sorted(found)


@cache
def vocabulary() -> Vocabulary:
    return Vocabulary.from_file()


_FILLER = re.compile(r"^(?:the|a|an|some|really|good|great)\s+|\s+(?:food|music|cuisine|restaurants?|team|fan)$")


def _strip_filler(form: str) -> str:
    previous = None
    while previous != form:
        previous, form = form, _FILLER.sub("", form).strip()
    return form


@dataclass(frozen=True)
class Taught:
    """A statement understood completely."""

    kind: PreferenceKind
    """What sort of preference."""
    key: str
    """The phrase it applies to ("" for a default)."""
    value: str
    """The canonical value it means."""


@dataclass(frozen=True)
class Unclear:
    """A teaching statement whose value could not be placed: ask, offering these choices (may be empty)."""

    phrase: str
    """The words that could not be placed."""
    options: tuple[Taught, ...]
    """Readings to offer the user."""
    kinds: tuple[PreferenceKind, ...]
    """Preference kinds the statement may be about."""

    def question(self) -> str:
        if self.options:
            names = [_describe(o) for o in self.options]
            return f"Did you mean {' or '.join(names)}?"
        words = " or ".join(f"a {KIND_WORDS[k]}" for k in self.kinds)
        return f"I don't know {self.phrase!r}. Is it {words}? Or say cancel."


Parse = Taught | Unclear


_RE = re.compile


_FAN = _RE(r"^(?:i'm|i am|im) (?:a |an )?(?:big |huge |massive |die ?hard |lifelong )?(?P<v>.+?) (?:fan|fans|fun|fam)$")


_IM_A = _RE(r"^(?:i'm|i am|im) (?:a |an )?(?:big |huge )?(?P<v>.+)$")  # "fan" lost: only a known team counts


_TEAM = [
    _FAN,
    _RE(r"^(?:i )?(?:support|root for|cheer for|follow) (?P<v>.+)$"),
    _RE(r"^my (?:favou?rite )?(?:\w+ )?team is (?P<v>.+)$"),
]


_CUISINE = [
    _RE(r"^(?:i |me )?(?:really )?(?:like|love|prefer|enjoy) (?P<v>.+?) (?:food|restaurants?|cuisine|places)$"),
    _RE(r"^my (?:favou?rite )?(?:food|cuisine|kind of food|type of food|restaurants?) (?:is|are) (?P<v>.+)$"),
]


_MUSIC = [
    _RE(r"^my (?:favou?rite )?(?:music|genre|kind of music|type of music|music genre) (?:is )?(?P<v>.+)$"),
    _RE(r"^(?:i |me )?(?:really )?(?:like|love|prefer|enjoy) (?:listening to )?(?P<v>.+?) music$"),
    _RE(r"^(?:i |me )?(?:really )?(?:like|love|enjoy) listening to (?P<v>.+)$"),
]


_GENERIC = _RE(r"^(?:i |me )?(?:really )?(?:like|love|prefer|enjoy|am into|i'm into) (?P<v>.+)$")


_PHRASE = [
    _RE(r"^(?:and |so |well )?when i (?:\w+ )?(?:say|said|set) (?P<k>.+?) i (?:\w+ )?mean (?P<v>.+)$"),
    _RE(r"^by (?P<k>.+?) i mean (?P<v>.+)$"),
    _RE(r"^(?P<k>.+?) means (?P<v>.+)$"),
]


_PLACE = _RE(r"^(?P<k>.+?) is the (?:one|won) (?:in|from|an|on|at|of) (?P<v>.+)$")


_ONE_IN = _RE(r"^the (?:one|won) (?:in|from|an|on|at|of) (?P<v>.+)$")


_ALIAS = _RE(r"^(?:the |my )?(?P<k>.+?) (?:is|are) (?:the |my )?(?P<v>.+)$")


_PREFIX = _RE(r"^(?:please )?(?:remember(?: that)?|note that|just so you know|fyi|actually) ")


def parse_statement(text: str, home: Home | None = None) -> Parse | None:
    """What a teaching statement teaches; ``None`` when the text is not a teaching statement at all (a command)."""
    form = _PREFIX.sub("", normalize(text))
    for pattern in _PHRASE:
        m = pattern.match(form)
        if m:
            return _meaning(m["k"], m["v"], home)
    m = _PLACE.match(form)
    if m:
        return Taught("place", _strip_filler(m["k"]), _place_value(m["k"], m["v"]))
    groups: list[tuple[tuple[PreferenceKind, ...], list[re.Pattern[str]]]] = [
        (("team", "music_genre"), [_FAN]),
        (("team",), _TEAM),
        (("cuisine",), _CUISINE),
    ]
    for kinds, patterns in groups:
        for pattern in patterns:
            m = pattern.match(form)
            if m:
                return _taste(m["v"], kinds)
    for pattern in _MUSIC:
        m = pattern.match(form)
        if m:
            return _taste(m["v"], ("music_genre",))
    m = _GENERIC.match(form)
    if m:
        return _taste(m["v"], TASTE_KINDS)
    m = _IM_A.match(form)
    if m:
        team = _taste(m["v"], ("team",))
        if isinstance(team, Taught):
            return team
    m = _ALIAS.match(form)
    if m and home is not None:
        devices = resolve_devices(m["v"], home)
        if len(devices) == 1:
            return Taught("device_alias", _strip_filler(m["k"]), devices[0])
    return None


def _taste(phrase: str, kinds: Sequence[PreferenceKind]) -> Parse:
    """One close match is taken; several, or only a rough one ("green food" -> Greek?), are asked about."""
    found = vocabulary().lookup(phrase, kinds)
    if len(found) == 1:
        return Taught(found[0][0], "", found[0][1])
    if not found:
        found = vocabulary().lookup(phrase, kinds, cutoff=CONFIRM_CUTOFF)
    return Unclear(_strip_filler(phrase), tuple(Taught(k, "", v) for k, v in found), tuple(kinds))


def _meaning(key: str, meaning: str, home: Home | None) -> Parse:
    key = _strip_filler(key)
    m = _ONE_IN.match(meaning)
    if m:
        return Taught("place", key, _place_value(key, m["v"]))
    if home is not None and meaning.startswith(("the ", "my ")):
        devices = resolve_devices(meaning, home)
        if len(devices) == 1:
            return Taught("device_alias", key, devices[0])
    return Taught("phrase", key, _actions(meaning))


_AND_THEN = _RE(r"\s+(?:and|and then|then)\s+(?=(?:turn|switch|set|dim|play|start|open|close|lock|unlock|put|make)\b)")


def _actions(meaning: str) -> str:
    """A phrase's meaning as the runtime stores it: one request, or several joined by ``|`` ("X and turn on Y")."""
    return "|".join(part.strip() for part in _AND_THEN.split(meaning) if part.strip())


def _place_value(key: str, where: str) -> str:
    return f"{_strip_filler(key).title()}, {_strip_filler(where).title()}"


def resolve_devices(phrase: str, home: Home) -> list[str]:
    """Device ids whose name (optionally with its area) best matches the phrase; several on a tie."""
    form = _strip_filler(normalize(phrase))
    scored: dict[str, float] = {}
    for device in home.devices:
        names = [normalize(n) for n in device.names]
        area_names = [] if device.area is None else [home.area(device.area).name, *home.area(device.area).aliases]
        forms = names + [f"{normalize(a)} {n}" for a in area_names for n in names]
        scored[device.id] = max(fuzz.token_sort_ratio(form, f) for f in forms)
    best = max(scored.values(), default=0.0)
    if best < DEVICE_CUTOFF:
        return []
    return sorted(d for d, s in scored.items() if s == best)


def _describe(t: Taught) -> str:
    if t.kind == "team":
        return f"the {t.value}"
    if t.kind == "music_genre":
        return f"{t.value} music"
    if t.kind == "cuisine":
        return f"{t.value} food"
    if t.kind == "device_alias":
        return t.value
    return f"{t.key!r} means {t.value!r}" if t.key else t.value
