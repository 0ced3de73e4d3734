"""Delexicalised forms: a home's own names replaced by typed placeholders, so failing wordings pool across homes.

"lights out in the lounge" (one home) and "lights out in the porch" (another) are the same failing wording with a
different room; as forms they never reach k distinct users, as the pattern "lights out in the _area_" they do.
The miner keys a pattern table by these forms and the online rewriter delexicalises an utterance with the *current*
home's names, looks the pattern up and fills the placeholders back in. Names come from the home configuration
(device names and aliases, area names and aliases, the home's and its people's towns, with and without their
state) and the NLU's own taste lists (genres, cuisines, teams), never from gold; numbers become ``_number_``.
A device name becomes its domain (``_light_``, ``_cover_``, ``_media_player_``, ...): a rule learned on lights must
never be filled with a lock's name. Placeholders are word tokens (``_area_``) so they survive ``text.normalize``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import get_args

import polars as pl

from selflearn.home import Domain, Home
from selflearn.text import normalize

DEVICE_KINDS: tuple[str, ...] = get_args(Domain)  # a device's placeholder is its domain: _light_, _lock_, ...
NAME_KINDS = ("area", "city", "town", "genre", "cuisine", "team", "number")
_KINDS = "|".join(sorted((*DEVICE_KINDS, *NAME_KINDS), key=len, reverse=True))
PLACEHOLDER = re.compile(rf"\b_({_KINDS})(\d*)_\b")
_NUMBER = r"\d+(?:\.\d+)?"


def typed_names(home: Home) -> list[tuple[str, str]]:
    """(normalised name, type) for everything this home calls by name; longest first, so "kitchen lamp" is one
    device rather than the area "kitchen" plus "lamp"."""
    names: dict[str, str] = {}
    for city in (home.city, *(p.city or "" for p in home.people)):
        # "Wilkerson, California" is a _city_, a bare "wilkerson" a _town_: a rule that spells the state out must
        # not be filled with the bare town (which may be ambiguous, which is what the repair fixed).
        if normalize(city):
            names.setdefault(normalize(city), "city")
        if "," in city and normalize(city.split(",")[0]):
            names.setdefault(normalize(city.split(",")[0]), "town")
    for area in home.areas:
        for name in (area.name, *area.aliases):
            if normalize(name):
                names.setdefault(normalize(name), "area")
    for device in home.devices:
        for name in device.names:
            if normalize(name):
                names[normalize(name)] = device.domain
    for name, kind in vocabulary().items():
        names.setdefault(name, kind)
    return sorted(names.items(), key=lambda kv: (-len(kv[0]), kv[0]))


VOCABULARY_LISTS = ("genre", "cuisine", "team")


@cache
def vocabulary() -> dict[str, str]:
    """The NLU's own value lists for tastes (genres, cuisines, teams): "throw on some jazz" and "throw on some
    funk" are one wording, ``throw on some _genre_``."""
    from selflearn.runtime.nlu import template_dict

    lists = template_dict()["lists"]
    words: dict[str, str] = {}
    for kind in VOCABULARY_LISTS:
        for value in lists.get(kind, {}).get("values", []):
            said = normalize(str(value["in"] if isinstance(value, dict) else value))
            if said:
                words.setdefault(said, kind)
    return words


@dataclass(frozen=True)
class Delexicaliser:
    """One home's names as a single regex (alternation, longest first) plus numbers."""

    regex: re.Pattern[str]
    """The home's names, longest first, plus numbers."""
    types: dict[str, str]
    """Name (lowercase) -> its placeholder type (device, area, ...)."""

    @classmethod
    def for_home(cls, home: Home) -> Delexicaliser:
        return cls.for_names(typed_names(home))

    @classmethod
    def for_names(cls, names: list[tuple[str, str]]) -> Delexicaliser:
        alternatives = [re.escape(n) for n, _ in names] + [_NUMBER]
        return cls(re.compile(rf"(?<!\w)(?:{'|'.join(alternatives)})(?!\w)"), dict(names))

    def apply(self, form: str) -> tuple[str, dict[str, str]]:
        """``form`` (normalised) -> (pattern, placeholder -> the words it stands for). A second name of the same
        type gets ``_area2_`` and so on."""
        values: dict[str, str] = {}
        seen: dict[str, int] = {}

        def swap(match: re.Match[str]) -> str:
            word = match.group(0)
            kind = self.types.get(word, "number")
            seen[kind] = seen.get(kind, 0) + 1
            token = f"_{kind}{seen[kind] if seen[kind] > 1 else ''}_"
            values[token] = word
            return token

        return self.regex.sub(swap, form), values


def placeholders(pattern: str) -> list[str]:
    return [m.group(0) for m in PLACEHOLDER.finditer(pattern)]


def fill(pattern: str, values: dict[str, str]) -> str | None:
    """Put the words back; None if the pattern needs a placeholder the utterance did not have."""
    if any(p not in values for p in placeholders(pattern)):
        return None
    return PLACEHOLDER.sub(lambda m: values[m.group(0)], pattern)


@lru_cache(maxsize=50_000)
def token_edits(source: str, target: str) -> tuple[tuple[str, int, int, int, int], ...]:
    """The token edits source -> target (difflib opcodes without the unchanged spans), cached: the same few rules are
    the neighbours of many queries online, and difflib was a third of the transfer + rank time."""
    opcodes = difflib.SequenceMatcher(a=source.split(), b=target.split(), autojunk=False).get_opcodes()
    return tuple(op for op in opcodes if op[0] != "equal")


def own_device_word(source: str, target: str) -> str | None:
    """The device domain if the rule only swaps a person's own word for a device for that device ("start the
    hoover" -> "start the _vacuum_"): the source names nothing, and the one edit replaces some of its words by one
    device placeholder, so the request itself (the verb, the rest) stays what the person said. Such a target can be
    filled only from the home (its one device of that domain), never from the utterance."""
    if placeholders(source):
        return None
    t = target.split()
    edits = token_edits(source, target)
    if len(edits) != 1 or edits[0][0] != "replace":
        return None
    _, _, _, j1, j2 = edits[0]
    match = PLACEHOLDER.fullmatch(" ".join(t[j1:j2]))
    if match is None or match.group(1) not in DEVICE_KINDS or match.group(2) or len(placeholders(target)) != 1:
        return None
    return match.group(1)


def only_devices(home: Home) -> dict[str, str]:
    """Device placeholder -> the name of the home's one device of that domain (domains with several are left out:
    which of them a person's own word means is theirs to say)."""
    by_domain: dict[str, list[str]] = {}
    for device in home.devices:
        by_domain.setdefault(device.domain, []).append(normalize(device.name))
    return {f"_{domain}_": names[0] for domain, names in by_domain.items() if len(names) == 1 and names[0]}


def slot_names(slots: pl.Expr) -> pl.Expr:
    """The sorted, comma-joined keys of a JSON slots column ("area,name"): an NLU outcome without its values."""
    return slots.str.extract_all(r'"\w+"\s*:').list.eval(pl.element().str.strip_chars('": ')).list.sort().list.join(",")


def delexicalise_frame(frame: pl.DataFrame, homes: Sequence[Home]) -> pl.DataFrame:
    """Scored turns with ``form`` and the NLU text replaced by their patterns (per the turn's home) and the NLU
    outcome reduced to intent + slot names, so repairs of different rooms in different homes are one success
    state. Computed once per distinct (home, text); turns of homes not in ``homes`` get tastes and numbers
    delexicalised."""
    by_home = {h.id: Delexicaliser.for_home(h) for h in homes}
    without_home = Delexicaliser.for_names(sorted(vocabulary().items(), key=lambda kv: (-len(kv[0]), kv[0])))
    nlu_text = pl.coalesce(pl.col("rewritten_text"), pl.col("asr_text"))
    frame = frame.with_columns(_nlu=nlu_text)
    texts = (
        pl.concat([frame.select("home_id", text=pl.col(c)) for c in ("form", "next_form", "_nlu")])
        .unique()
        .drop_nulls()
    )
    mapped = [by_home.get(home_id, without_home).apply(normalize(text))[0] for home_id, text in texts.iter_rows()]
    lookup = texts.with_columns(pattern=pl.Series(mapped, dtype=pl.String))
    names = slot_names(pl.col("nlu_slots"))
    for column in ("form", "next_form", "_nlu"):
        frame = frame.join(
            lookup.rename({"text": column, "pattern": f"_{column}_pattern"}),
            on=["home_id", column],
            how="left",
            maintain_order="left",
        )
    return frame.with_columns(
        form=pl.col("_form_pattern"),
        next_form=pl.col("_next_form_pattern"),
        asr_text=pl.col("__nlu_pattern"),
        rewritten_text=pl.lit(None, dtype=pl.String),
        nlu_slots=names.fill_null(""),
    ).drop("_nlu", "_form_pattern", "_next_form_pattern", "__nlu_pattern")
