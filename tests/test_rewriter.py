"""Online rewriter on hand-made rewrite tables: exact hits, transfer to variants, layers, thresholds, reload."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from selflearn.home import Home, shipped_homes
from selflearn.runtime.encoder import Encoder
from selflearn.runtime.form_index import FormIndex, OnlineConfig, build_index, index_path, read_index, save_indexes
from selflearn.runtime.ranker import Ranker, RankWeights, Rule, _mentions, home_entities
from selflearn.runtime.rewriter import OnlineRewriter
from selflearn.runtime.rewrites import GLOBAL_TABLE, REWRITE_SCHEMA, empty_table, write_tables
from selflearn.runtime.transfer import flips, transfer


def table(rows: list[tuple[str, str, float, int]], layer: str = "global", user_id: str | None = None) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {
                "source": s,
                "target": t,
                "probability": p,
                "support": n,
                "distinct_users": n,
                "source_intent": None,
                "target_intent": "HassTurnOn",
                "layer": layer,
                "user_id": user_id,
            }
            for s, t, p, n in rows
        ],
        schema=REWRITE_SCHEMA,
    )


GLOBAL = table(
    [
        ("turn on the kitten light", "turn on the kitchen light", 0.9, 6),
        ("start brewing", "turn on the coffee maker", 0.8, 4),
        ("play some jas", "play some jazz", 0.3, 1),
    ]
)
PERSONAL = table([("weather in wilkerson", "weather in wilkerson california", 1.0, 2)], "personal", "maple.ana")


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder()


@pytest.fixture(scope="module")
def home() -> Home:
    return next(h for h in shipped_homes() if h.id == "maple_house")


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("artifacts")
    write_tables(root, GLOBAL, PERSONAL)
    return root


@pytest.fixture(scope="module")
def rewriter(artifact_dir: Path, encoder: Encoder) -> OnlineRewriter:
    return OnlineRewriter.load(artifact_dir, encoder=encoder)


def test_transfer_applies_the_edit_where_the_span_is() -> None:
    assert transfer("turn off the kitten light", "turn on the kitten light", "turn on the kitchen light") == (
        "turn off the kitchen light"
    )
    assert transfer("what's the weather in wilkerson", "weather in wilkerson", "weather in wilkerson california") == (
        "what's the weather in wilkerson california"
    )
    assert (
        transfer("weather in wilkerson california", "weather in wilkerson", "weather in wilkerson california") is None
    )
    assert transfer("play rock", "play some jas", "play some jazz") is None


def test_transfer_keeps_edits_at_the_edges_and_between_their_neighbours() -> None:
    assert transfer("what is the weather", "is the weather", "what's the weather") is None
    assert transfer("is the weather like", "is the weather", "what's the weather") == "what's the weather like"
    assert transfer(
        "set the temperature to 19 degrees", "set the temperature to 23 degrees", "set the thermostat to 23"
    ) == ("set the thermostat to 19")
    assert transfer("play some music", "play music", "play rock music") is None
    assert transfer("play some music", "play music", "play some soul") == "play some soul"
    assert transfer("no no turn on the kitten light", "turn on the kitten light", "turn on the kitchen light") == (
        "no no turn on the kitchen light"
    )
    assert transfer("please play music now", "play music", "play rock music") == "please play rock music now"


def test_transfer_keeps_moved_words_in_their_context_and_repeats_it_deletes() -> None:
    moved = ("set the brightness the _area_ to _number_", "set the _area_ brightness to _number_")
    assert transfer("set the brightness in the _area_ to _number_", *moved) is None  # not "... brightness in to"
    assert (
        transfer("set the brightness the _area_ to _number_ now", *moved) == "set the _area_ brightness to _number_ now"
    )
    assert transfer("what time is", "what what time is it", "what time is it") is None
    assert transfer("what what time is", "what what time is it", "what time is it") == "what time is"
    assert transfer("x b y a z", "p a q b r", "p c q d r") is None  # edits out of the source's order


def test_exact_hit_rewrites_without_encoding(rewriter: OnlineRewriter, home: Home) -> None:
    before = len(rewriter.encoder._cache)
    best = rewriter.best("Start brewing!", user_id="maple.ben", home=home)
    assert best is not None and best.text == "turn on the coffee maker" and best.rule.layer == "global"
    assert len(rewriter.encoder._cache) == before


def test_near_variant_is_rewritten_by_transfer(rewriter: OnlineRewriter, home: Home) -> None:
    best = rewriter.best("turn off the kitten light", user_id="maple.ben", home=home)
    assert best is not None and best.text == "turn off the kitchen light" and best.transferred


def test_working_and_unrelated_utterances_are_left_alone(rewriter: OnlineRewriter, home: Home) -> None:
    for text in ("turn on the kitchen light", "what time is it", "lock the garage door", ""):
        assert rewriter.best(text, user_id="maple.ben", home=home) is None, text


def test_utterance_without_an_edit_anchor_is_not_encoded(rewriter: OnlineRewriter, home: Home) -> None:
    assert "kitten" in rewriter.global_index.anchors and "the" not in rewriter.global_index.anchors
    before = len(rewriter.encoder._cache)
    assert rewriter.best("what time is it now", user_id="maple.ben", home=home) is None
    assert len(rewriter.encoder._cache) == before
    rewriter.best("turn on a kitten lamp", user_id="maple.ben", home=home)
    assert len(rewriter.encoder._cache) == before + 1


def test_weak_rule_stays_below_threshold_on_a_variant(rewriter: OnlineRewriter, home: Home) -> None:
    assert rewriter.best("play jas", user_id="maple.ben", home=home) is None


def test_personal_layer_only_for_its_user(rewriter: OnlineRewriter, home: Home) -> None:
    ana = rewriter.best("What's the weather in Wilkerson?", user_id="maple.ana", home=home)
    assert ana is not None and ana.rule.layer == "personal" and ana.text.endswith("wilkerson california")
    assert ana.entity
    assert rewriter.best("what's the weather in wilkerson", user_id="maple.ben", home=home) is None


def test_a_name_is_mentioned_only_as_whole_words() -> None:
    assert _mentions("turn on the lounge lamp", "lounge") and _mentions("lights in the living room", "living room")
    assert not _mentions("turn on the loungeroom lamp", "lounge") and not _mentions("the lounge", "lounge lamp")


def test_home_entities_include_devices_areas_and_city(home: Home) -> None:
    names = home_entities(home, "maple.ana")
    assert {"kitchen light", "living room", "wilkerson california"} <= set(names)


def test_whole_target_never_drops_what_was_said() -> None:
    ranker = Ranker(RankWeights())
    rule = Rule("set the temperature to 18 degrees", "set the thermostat to 18", 0.9, 8, "global")
    assert ranker.score("set the temperature to 19 degrees please", rule, 0.95, []) is None
    near = ranker.score("set the temperature to 18 degrees please", rule, 0.97, [])
    assert near is not None and near.text == "set the thermostat to 18" and not near.transferred


def test_a_rewrite_never_flips_the_request() -> None:
    ranker = Ranker(RankWeights())
    rule = Rule("turn off the living room lights", "turn on the lights in the living room", 0.9, 5, "personal")
    assert flips("turn the lamp thing off", "turn on the floor lamp")
    assert not flips("turn on the kitten light", "turn on the kitchen light")
    assert ranker.score(rule.source, rule, 1.0, []) is None


def test_ranker_score_grows_with_evidence() -> None:
    ranker = Ranker(RankWeights())
    weak = ranker.score("b a x", Rule("a x", "a y", 0.2, 1, "global"), 0.9, [])
    strong = ranker.score("b a x", Rule("a x", "a y", 0.9, 10, "global"), 0.9, [])
    assert weak is not None and strong is not None and strong.score > weak.score


def test_floor_drops_only_candidates_that_could_not_reach_it() -> None:
    """The online path passes its threshold as ``floor``: a rule with no chance skips the transfer, any other is
    scored exactly as without a floor."""
    ranker = Ranker(RankWeights())
    rule = Rule("turn on the kitten light", "turn on the kitchen light", 0.9, 5, "global")
    far = "please could you switch the kitten light in the hall on for me"
    weak = ranker.score(far, rule, 0.8, [])
    assert weak is not None and weak.transferred and weak.score < 0.55
    assert ranker.score(far, rule, 0.8, [], floor=0.55) is None
    near = ranker.score("turn off the kitten light", rule, 0.9, ["kitchen"])
    assert near is not None and near.score >= 0.55
    assert ranker.score("turn off the kitten light", rule, 0.9, ["kitchen"], floor=0.55) == near


def test_ivf_index_finds_the_nearest_form() -> None:
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(3000, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = build_index(vectors, OnlineConfig(flat_limit=1000, nprobe=64))
    _, ids = index.search(vectors[[7]], 1)
    assert ids[0][0] == 7


def test_a_saved_ivf_index_reads_back_with_the_configs_search_settings(tmp_path: Path) -> None:
    import faiss

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(3000, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rules = [Rule(f"form {i}", f"fixed {i}", 0.9, 5, "global") for i in range(3000)]
    config = OnlineConfig(flat_limit=1000, nprobe=64)
    path = FormIndex(rules, vectors, config).save(tmp_path / "global.parquet")
    assert path == index_path(tmp_path / "global.parquet", [r.source for r in rules])
    index = read_index(path, OnlineConfig(flat_limit=1000, nprobe=48, refine=4))
    assert isinstance(index, faiss.IndexRefine) and index.k_factor == 4
    assert faiss.extract_index_ivf(index).nprobe == 48
    assert index.search(vectors[[7]], 1)[1][0][0] == 7


def test_ivf_scores_are_exact_cosines() -> None:
    """The lists hold lossy PQ codes; the cosine floor and the ranker must still see exact cosines (re-scored)."""
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(3000, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = vectors[11] + 0.5 * vectors[12]
    query /= np.linalg.norm(query)
    scores, ids = build_index(vectors, OnlineConfig(flat_limit=1000, nprobe=64)).search(query.reshape(1, -1), 8)
    assert ids[0][0] == 11
    np.testing.assert_allclose(scores[0], vectors[ids[0]] @ query, atol=1e-5)


def test_empty_tables_never_rewrite(encoder: Encoder, home: Home) -> None:
    rewriter = OnlineRewriter(table([]), encoder=encoder)
    assert len(rewriter.global_index) == 0
    assert rewriter.best("turn on the kitten light", user_id="u", home=home) is None
    assert len(FormIndex.from_table(table([("a", "a", 1.0, 3)]), encoder, OnlineConfig())) == 0


def test_rewrite_cli_uses_the_artifact_set_in_service(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from selflearn.artifacts import ArtifactStore
    from selflearn.cli.main import app

    store = ArtifactStore(tmp_path / "artifacts")
    version = store.publish(lambda root: write_tables(root, GLOBAL, PERSONAL), meta={})
    args = ["rewrite", "what's the weather in wilkerson", "--user", "maple.ana", "--artifacts", str(store.root)]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["rewrite"] == "what's the weather in wilkerson california" and answer["source"] == "personal"
    assert answer["artifacts"] == version and answer["candidates"][0]["transferred"]
    missing = CliRunner().invoke(app, ["rewrite", "x", "--user", "u", "--artifacts", str(tmp_path / "none")])
    assert missing.exit_code == 2


PATTERNS = table(
    [
        ("kill the lights in the _area_", "turn off the lights in the _area_", 0.6, 12),
        ("_oven_ to _number_ please", "preheat the _oven_ to _number_ degrees", 0.7, 8),
        ("lights out", "turn off the _area_ lights", 0.9, 9),
    ]
)


@pytest.fixture(scope="module")
def pattern_rewriter(encoder: Encoder) -> OnlineRewriter:
    return OnlineRewriter(GLOBAL, encoder=encoder, pattern_table=PATTERNS)


def test_pattern_rule_is_filled_with_this_homes_names(pattern_rewriter: OnlineRewriter, home: Home) -> None:
    best = pattern_rewriter.best("kill the lights in the lounge", user_id="u", home=home)
    assert best is not None and best.text == "turn off the lights in the lounge" and best.rule.layer == "global"
    best = pattern_rewriter.best("oven to 200 please", user_id="u", home=home)
    assert best is not None and best.text == "preheat the oven to 200 degrees"
    variant = pattern_rewriter.best("kill the lights in the study please", user_id="u", home=home)
    assert variant is not None and variant.text == "turn off the lights in the study please"


def test_pattern_rule_needs_every_placeholder_and_a_known_name(pattern_rewriter: OnlineRewriter, home: Home) -> None:
    assert pattern_rewriter.best("lights out", user_id="u", home=home) is None  # which room? not said
    assert pattern_rewriter.best("kill the lights in the dungeon", user_id="u", home=home) is None
    assert pattern_rewriter.best("turn off the lights in the kitchen", user_id="u", home=home) is None


def test_lexical_rules_come_before_pattern_rules(encoder: Encoder, home: Home) -> None:
    lexical = table([("kill the lights in the kitchen", "turn off the kitchen light", 0.9, 6)])
    rewriter = OnlineRewriter(lexical, encoder=encoder, pattern_table=PATTERNS)
    best = rewriter.best("kill the lights in the kitchen", user_id="u", home=home)
    assert best is not None and best.text == "turn off the kitchen light"


def test_interpret_cli_applies_the_learned_rewrite_unless_told_not_to(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from selflearn.artifacts import ArtifactStore
    from selflearn.cli.main import app

    store = ArtifactStore(tmp_path / "artifacts")
    store.publish(lambda root: write_tables(root, GLOBAL, PERSONAL), meta={})
    args = ["interpret", "turn on the kitten light", "--artifacts", str(store.root), "--json"]
    turn = json.loads(CliRunner().invoke(app, args).stdout)["turn"]
    assert turn["rewritten_text"] == "turn on the kitchen light" and turn["rewrite_source"] == "global"
    assert turn["result_status"] == "success"
    plain = json.loads(CliRunner().invoke(app, [*args, "--no-rewrite"]).stdout)["turn"]
    assert plain["rewritten_text"] is None and plain["rewrite_source"] == "none"


def test_placeholders_alone_do_not_open_the_encoding_gate(encoder: Encoder) -> None:
    index = FormIndex.from_table(PATTERNS, encoder, OnlineConfig())
    assert "_oven_" not in index.anchors and "_area_" not in index.anchors
    assert {"kill", "please", "lights", "out"} <= index.anchors


def test_a_pattern_naming_nothing_applies_and_an_own_device_word_takes_the_homes_only_device(
    encoder: Encoder, home: Home
) -> None:
    patterns = table(
        [
            ("louder", "turn up the volume", 0.6, 19),
            ("start the hoover", "start the _vacuum_", 0.7, 10),
            ("turn on the tube", "turn on the _media_player_", 0.7, 9),
            ("set the _area_ brightness to _number_", "close the _cover_", 0.9, 9),
        ]
    )
    rewriter = OnlineRewriter(table([]), encoder=encoder, pattern_table=patterns)
    best = rewriter.best("louder", user_id="u", home=home)
    assert best is not None and best.text == "turn up the volume"
    best = rewriter.best("start the hoover", user_id="u", home=home)  # maple_house has one vacuum
    assert best is not None and best.text == "start the robot vacuum"
    assert rewriter.best("turn on the tube", user_id="u", home=home) is None  # a TV and a speaker: which?
    assert rewriter.best("set the kitchen brightness to 40", user_id="u", home=home) is None


def test_a_saved_index_is_served_without_encoding_the_table(
    tmp_path: Path, encoder: Encoder, home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The artifact set carries the global layer's dense index, so a fresh process does not encode every source
    form; a table edited after its index was written is encoded again rather than searched with stale vectors."""
    write_tables(tmp_path, GLOBAL, empty_table(), empty_table())
    forms = ["turn on the kitten light", "start brewing", "play some jas"]
    assert save_indexes(tmp_path, encoder) == [index_path(tmp_path / GLOBAL_TABLE, forms)]  # no patterns: no index
    encoded: list[str] = []
    real = encoder.encode
    monkeypatch.setattr(encoder, "encode", lambda texts: encoded.extend(texts) or real(texts))
    served = OnlineRewriter.load(tmp_path, encoder=encoder)
    assert encoded == []
    best = served.best("turn off the kitten light", user_id="u", home=home)
    assert best is not None and best.text == "turn off the kitchen light" and best.cosine < 1.0
    edited = pl.concat([GLOBAL, table([("switch of the fan", "switch off the fan", 0.9, 6)])])
    write_tables(tmp_path, edited, empty_table(), empty_table())
    assert OnlineRewriter.load(tmp_path, encoder=encoder).best("switch of the fan please", user_id="u", home=home)
    assert "switch of the fan" in encoded
