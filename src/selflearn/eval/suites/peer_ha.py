"""Suite ``peer-ha``: Home Assistant's own English test sentences through selflearn's NLU, context off.

The sentences and their fixture home (areas, floors, entities) are HA's (CC BY 4.0, vendored unchanged in
``data/ha_tests``). A sentence passes when the top hypothesis has the expected intent and exactly the expected
slots (a list in the test means "any of"): HA's own rule, with one allowance for the tests' age (see ``passes``).
The result's intent context is not compared, since the runtime consumes context rather than reporting it.
``baseline.pass_rate`` is plain hassil ``recognize`` over HA's templates alone with the same slot lists and the
same rule, so the number shows whether selflearn's extra templates and ranking cost HA anything.

With ``--ha-config DIR`` the home is instead imported from a Home Assistant config directory's registry files
(``integrations/ha_import.py``; ``selflearn homes ha-fixtures DIR`` writes HA's test home that way, padded to a
full house), and each reading is judged as the service sends it to HA (``integrations/intents.py``: device ids
back to HA's names): the number shows whether an imported home answers what HA's own fixture home does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hassil import Intents, SlotList, TextSlotList, recognize
from home_assistant_intents import get_intents

from selflearn import paths, progress
from selflearn.eval import harness as evaluate
from selflearn.home import Home
from selflearn.integrations.ha_fixtures import fixture_config, merged, names
from selflearn.integrations.ha_import import read_config_dir, to_home
from selflearn.integrations.intents import to_ha
from selflearn.runtime.context import Candidate
from selflearn.runtime.nlu import NLU

logger = logging.getLogger(__name__)

TESTS_DIR = paths.PACKAGE_DATA / "ha_tests"
QUICK_EVERY = 5


@dataclass(frozen=True)
class Sentence:
    file: str
    """The HA intents test file it comes from."""
    text: str
    """The sentence."""
    intent: str
    """The intent HA's test expects."""
    slots: dict[str, Any]
    """The slots HA's test expects."""
    context: dict[str, Any]
    """The context the test gives (area of the satellite, ...)."""
    own_fixtures: bool = False
    """Folder-style files bring their own areas/entities on top of _fixtures.yaml."""


def fixture_slot_lists(fixtures: Mapping[str, Any]) -> dict[str, SlotList]:
    """HA's test home as hassil slot lists: areas and floors by name, entities by name with domain + attributes."""
    areas = [n for a in fixtures.get("areas", []) for n in names(a["name"])]
    floors = [n for f in fixtures.get("floors", []) for n in names(f["name"])]
    entities = [
        (n, n, {"domain": e.get("domain") or e["id"].split(".", 1)[0], **e.get("attributes", {})})
        for e in fixtures.get("entities", [])
        for n in names(e["name"])
    ]
    return {
        "area": TextSlotList.from_strings(areas),
        "floor": TextSlotList.from_strings(floors),
        "name": TextSlotList.from_tuples(entities),
    }


def sentences(root: Path = TESTS_DIR) -> Iterator[Sentence]:
    """Both of HA's layouts: ``<domain>_<Intent>.yaml`` (intent per block) and ``<Intent>/<case>.yaml``."""
    for path in sorted(root.rglob("*.yaml")):
        if path.name == "_fixtures.yaml":
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        folder_intent = path.parent.name if path.parent != root else None
        for test in data.get("tests", []):
            intent = test.get("intent", {})
            name = intent.get("name", folder_intent)
            slots = intent.get("slots", test.get("slots", {})) or {}
            context = intent.get("context", test.get("context", {})) or {}
            own = any(k in data for k in ("areas", "entities", "floors"))
            for text in test.get("sentences") or []:
                yield Sentence(str(path.relative_to(root)), text, name, slots, context, own)


def passes(
    intent: str | None, slots: Mapping[str, Any], case: Sentence, name_domains: Mapping[str, set[str]] | None = None
) -> bool:
    """HA's rule: same intent, exactly the expected slots. One allowance, applied to both systems alike: the tests
    (older than the templates) expect a ``domain`` slot that newer templates carry in the matched name's context
    instead, so an expected domain counts as present when the matched ``name`` is an entity of that domain."""
    slots = dict(slots)
    want_domain = case.slots.get("domain")
    name = str(slots.get("name", "")).casefold()
    if "domain" not in slots and isinstance(want_domain, str) and want_domain in (name_domains or {}).get(name, ()):
        slots["domain"] = want_domain
    if intent != case.intent or set(slots) != set(case.slots):
        return False
    for name, got in slots.items():
        want = case.slots[name]
        if isinstance(want, list):
            ok = set(want) <= set(got) if isinstance(got, list) else got in want
        else:
            ok = want in got if isinstance(got, list) else _same(got, want)
        if not ok:
            return False
    return True


def _same(got: Any, want: Any) -> bool:
    if isinstance(got, (int, float)) and isinstance(want, (int, float)):
        return float(got) == float(want)
    return bool(got == want)


@evaluate.suite("peer-ha")
def run(config: evaluate.EvalConfig) -> evaluate.EvalResult:
    fixtures = yaml.safe_load((TESTS_DIR / "_fixtures.yaml").read_text(encoding="utf-8"))
    ha_only = Intents.from_dict(get_intents("en") or {})
    cases = list(sentences())
    if config.quick:
        cases = cases[::QUICK_EVERY]
    ok = base = 0
    failed_files: dict[str, int] = {}
    homes: dict[str, _TestHome] = {}
    for i, case in enumerate(progress.track(cases, "peer-ha: sentences")):
        key = case.file if case.own_fixtures else "_fixtures.yaml"
        if key not in homes:
            homes[key] = _test_home(fixtures, TESTS_DIR / key, config.ha_config)
        home = homes[key]
        hyps = home.ours.parse(case.text, context=case.context)
        top = hyps[0] if hyps else None
        if top is not None and home.imported is not None:
            sent = to_ha(Candidate(top.intent, top.slots, top.score), None, home.imported)
            mine = passes(sent.name, sent.entities, case, home.our_domains)
        else:
            mine = top is not None and passes(top.intent, top.slots, case, home.our_domains)
        plain = recognize(case.text, ha_only, slot_lists=home.lists, intent_context=case.context or None, language="en")
        theirs = plain is not None and passes(
            plain.intent.name, {e.name: e.value for e in plain.entities.values()}, case, home.domains
        )
        ok += mine
        base += theirs
        if not mine:
            failed_files[case.file] = failed_files.get(case.file, 0) + 1
        if i % 500 == 0:
            logger.debug(f"peer-ha: {i}/{len(cases)} sentences")
    worst = sorted(failed_files.items(), key=lambda kv: -kv[1])[:5]
    logger.info(f"peer-ha: most failures in {worst}")
    n = len(cases)
    metrics: dict[str, evaluate.Number] = {"pass_rate": ok / n, "passed": ok}
    if config.ha_config is not None:
        main = _imported(config.ha_config, TESTS_DIR / "_fixtures.yaml")
        metrics |= {"imported_areas": len(main.areas), "imported_devices": len(main.devices)}
    return evaluate.EvalResult(n=n, metrics=metrics, baseline={"pass_rate": base / n, "passed": base})


@dataclass(frozen=True)
class _TestHome:
    """One test file's home, as plain hassil sees it (HA's fixtures) and as selflearn does (the same, or imported)."""

    lists: dict[str, SlotList]  # HA's fixture home as slot lists: plain hassil's
    domains: dict[str, set[str]]  # fixture name -> domains, for plain hassil's readings
    ours: NLU
    our_domains: dict[str, set[str]]  # the same for selflearn's home (the imported one's names)
    imported: Home | None  # the home imported from HA registry files, if any


def _test_home(fixtures: Mapping[str, Any], path: Path, ha_config: Path | None) -> _TestHome:
    fixture_home = _merged(fixtures, path)
    lists, domains = fixture_slot_lists(fixture_home), name_domains(fixture_home)
    if ha_config is None:
        return _TestHome(lists, domains, NLU(lists), domains, None)
    imported = _imported(ha_config, path)
    return _TestHome(lists, domains, NLU.for_home(imported), _home_name_domains(imported), imported)


def _imported(config_dir: Path, path: Path) -> Home:
    """The home imported from ``config_dir``, plus a folder-style test file's own areas/entities as HA entries."""
    config = read_config_dir(config_dir)
    if path.name != "_fixtures.yaml":
        config = merged(config, fixture_config(yaml.safe_load(path.read_text(encoding="utf-8"))))
    return to_home(config, home_id="peer_ha").home


def _home_name_domains(home: Home) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for d in home.devices:
        for n in d.names:
            out.setdefault(n.casefold(), set()).add(d.domain)
    return out


def name_domains(fixtures: Mapping[str, Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in fixtures.get("entities", []):
        for n in names(e["name"]):
            out.setdefault(n.casefold(), set()).add(e.get("domain") or e["id"].split(".", 1)[0])
    return out


def _merged(fixtures: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """A test file's own areas/floors/entities added to the shared fixture home."""
    own = yaml.safe_load(path.read_text(encoding="utf-8")) if path.name != "_fixtures.yaml" else {}
    return {k: [*fixtures.get(k, []), *own.get(k, [])] for k in ("areas", "floors", "entities")}
