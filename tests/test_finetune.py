import random
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from selflearn.artifacts import ArtifactStore
from selflearn.learners.finetune import (
    EncoderTuner,
    TuneConfig,
    TunedEncoder,
    batches,
    hard_negatives,
    mined_pairs,
    retrieval_accuracy,
)
from selflearn.learners.learn import LearnConfig, learn
from selflearn.runtime.encoder import Encoder
from selflearn.sim import SimConfig, generate_homes
from selflearn.sim.run import simulate
from selflearn.store.logview import LogView


def _logs(homes: int, seed: int, days: int) -> LogView:
    logs = simulate(generate_homes(homes, seed), days=days, seed=seed, config=SimConfig(phrasing="realistic"))
    return LogView.from_records([t for log in logs for t in log.turns])


@pytest.fixture(scope="module")
def train() -> pl.DataFrame:
    return mined_pairs(_logs(16, 31, 2))


def test_pairs_are_failures_and_the_rephrase_that_worked(train: pl.DataFrame) -> None:
    assert train.height > 200
    assert (train["anchor"] != train["positive"]).all()
    assert train["target"].str.contains("|", literal=True).all() and train["intent"].null_count() == 0
    assert mined_pairs(LogView.from_records([])).height == 0


def test_hard_negatives_share_the_intent_but_not_the_outcome() -> None:
    pairs = pl.DataFrame(
        {
            "anchor": ["kill the kitchen lights", "lounge lights out", "um the weather", "kill kitchen"],
            "positive": [
                "turn off the kitchen lights",
                "turn off the lounge lights",
                "what is the weather",
                "turn off the kitchen lights",
            ],
            "target": ["off|kitchen", "off|lounge", "weather|", "off|kitchen"],
            "intent": ["off", "off", "weather", "off"],
        }
    )
    negatives = hard_negatives(pairs, random.Random(0))
    assert negatives == [
        "turn off the lounge lights",
        "turn off the kitchen lights",
        negatives[2],
        "turn off the lounge lights",
    ]
    assert negatives[2] in {"turn off the kitchen lights", "turn off the lounge lights"}
    plan = batches(pairs["positive"].to_list(), 8, random.Random(0))
    assert all(len({pairs["positive"][i] for i in b}) == len(b) for b in plan)
    assert sorted(i for b in plan for i in b) == [0, 1, 2]  # the repeat of kitchen has nothing left to contrast


def test_tuned_encoder_finds_what_works_on_unseen_homes(train: pl.DataFrame, tmp_path: Path) -> None:
    unseen = mined_pairs(_logs(8, 32, 2))
    assert not set(unseen["anchor"]) <= set(train["anchor"])
    config = TuneConfig(epochs=3, batch_size=32, max_seconds=150.0, seed=0)
    tuned = EncoderTuner(config).fit_pairs(train)
    assert tuned.meta["steps"] > 5 and tuned.meta["pairs"] <= tuned.meta["mined_pairs"]
    base, mine = retrieval_accuracy(Encoder(), unseen), retrieval_accuracy(tuned.encoder(), unseen)
    assert mine > base + 0.02, (base, mine)

    store = ArtifactStore(tmp_path)
    store.publish(tuned.save, meta={"encoder": tuned.meta})
    current = store.current_dir()
    assert current is not None
    loaded = TunedEncoder.find(current)
    assert loaded is not None and loaded.meta == tuned.meta
    texts = ["kill the lights in the lounge", "um what time is it"]
    assert np.allclose(loaded.encoder().encode(texts), tuned.encoder().encode(texts))
    assert TunedEncoder.find(tmp_path) is None


def test_too_few_pairs_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="mined pairs"):
        EncoderTuner().fit_pairs(
            pl.DataFrame(schema=dict.fromkeys(("anchor", "positive", "target", "intent"), pl.String))
        )


def test_learn_publishes_the_tuned_encoder_with_the_rules(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    report = learn(
        _logs(8, 33, 2), store, config=LearnConfig(shadow=False, learners=("signals", "mining", "retrieval", "encoder"))
    )
    assert report.published and report.parts["encoder"]["steps"] > 0
    current = store.current_dir()
    assert current is not None and (current / "rewrites" / "global.parquet").exists()
    tuned = TunedEncoder.find(current)
    assert tuned is not None and tuned.meta == report.parts["encoder"]
    assert tuned.encoder().encode(["lights out"]).shape == (1, 384)
