"""Eval suite ``encoder``: does the retrieval encoder fine-tuned on one world's logs find what works in another?

Both worlds use realistic phrasing (``SimConfig(phrasing="realistic")``, the long tail). ``EncoderTuner`` learns
from the training world's mined pairs (failing form -> the rephrase its chain ended in; logs only). On the unseen
world's logs (other homes and people; ``--home PATH``: that home), each distinct failing form asks for its nearest
working utterance among all the utterances that worked there; ``retrieval_accuracy`` is the share whose nearest
one leads to the outcome (intent + slots) the person actually reached. ``baseline.retrieval_accuracy``: the stock
int8 MiniLM the runtime ships, on the same pairs. ``train_*``: the same on the training pairs.
"""

from __future__ import annotations

import logging

import polars as pl

from selflearn.eval.harness import EvalConfig, EvalResult, suite
from selflearn.home import Home, load_home
from selflearn.learners.finetune import EncoderTuner, TuneConfig, mined_pairs, retrieval_accuracy
from selflearn.runtime.encoder import Encoder
from selflearn.sim import SimConfig, generate_homes
from selflearn.sim.run import simulate
from selflearn.store.logview import LogView

logger = logging.getLogger(__name__)


@suite("encoder")
def run(config: EvalConfig) -> EvalResult:
    realistic = SimConfig(phrasing="realistic")
    train_homes = generate_homes(8 if config.quick else 24, config.seed)
    unseen_homes = (
        [load_home(config.home)] if config.home else generate_homes(6 if config.quick else 12, config.seed + 1)
    )
    days = 2 if config.quick else 3

    def pairs_of(homes: list[Home], seed: int) -> pl.DataFrame:
        logs = simulate(homes, days=days, seed=seed, config=realistic)
        return mined_pairs(LogView.from_records([t for log in logs for t in log.turns]))

    train, unseen = pairs_of(train_homes, config.seed), pairs_of(unseen_homes, config.seed + 1)
    logger.info(f"encoder: {train.height:,} training pairs, {unseen.height:,} unseen pairs")
    tune = TuneConfig(epochs=1 if config.quick else 3, max_seconds=25.0 if config.quick else 600.0, seed=config.seed)
    tuned = EncoderTuner(tune).fit_pairs(train, on_step=lambda i, n: logger.info(f"step {i}/{n}"))
    stock, mine = Encoder(), tuned.encoder()
    base = {
        "retrieval_accuracy": retrieval_accuracy(stock, unseen),
        "train_retrieval_accuracy": retrieval_accuracy(stock, train),
    }
    metrics = {
        "retrieval_accuracy": retrieval_accuracy(mine, unseen),
        "train_retrieval_accuracy": retrieval_accuracy(mine, train),
        "unseen_pairs": float(unseen.height),
        "unseen_failing_forms": float(unseen["anchor"].n_unique()),
        "train_pairs": float(train.height),
        **{k: float(tuned.meta[k]) for k in ("steps", "train_seconds", "export_seconds", "first_loss", "last_loss")},
    }
    metrics["gain"] = metrics["retrieval_accuracy"] - base["retrieval_accuracy"]
    return EvalResult(n=unseen.height, metrics=metrics, baseline=base)
