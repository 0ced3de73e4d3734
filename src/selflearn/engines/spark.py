"""The mining plan on Apache Spark: the embedded engine's signals, chains, absorbing chain, guardrails and rule
tables as DataFrame operations, for logs that outgrow one machine.

``SparkMiner(config, spark).fit(turns, feedback, homes=...)`` reads Spark DataFrames (``read_logs`` opens the
partitioned Parquet dataset of ``engines.dataset``) and returns the same ``RewriteTables`` as
``rewrite.mining.RewriteMiner`` on the same logs (tests/test_spark.py holds them equal). Both read one
``MiningConfig``. The logs never reach the driver: per-user windows build the chains, group-bys count them, and the
absorbing chain B = (I - Q)^-1 R is solved by repeated squaring as DataFrame joins (B += P B, P = P P, from P = Q)
until the transition mass left is below ``TOLERANCE``. Only the candidate rules (past the support, k-anonymity and
probability floors) come to the driver, where the per-rule string guards (sensitive targets, hygiene, the personal
weak-link overrule, placeholder filling) are the embedded engine's own code.

Run it through ``selflearn learn --engine spark`` (shadow check and publishing as always), or mine a dataset with
``spark-submit`` / ``python -m selflearn.engines.spark --parquet DIR --out DIR [--master URL]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from selflearn.engines.dataset import FEEDBACK, PARTITIONS, TURNS
from selflearn.engines.spark_signals import by_user, delexicalise, score, with_form
from selflearn.home import Home
from selflearn.learners.hygiene import Hygiene
from selflearn.learners.mining import (
    INTENT_FAMILIES,
    MiningConfig,
    RewriteMiner,
    RewriteTables,
    fillable,
    global_rows,
    personal_rows,
)
from selflearn.learners.signals import NO_RESULT_STATUSES

LEAK = 1e-9  # the embedded solve's give-up leak: I - (1 - LEAK) Q, so a loop of failing forms is absorbed nowhere
TOLERANCE = 1e-13  # stop squaring when every form's remaining transition mass is below this (probabilities exact
# to well below the 1e-9 the engines are held to)
PRUNE = 1e-18  # squared transition entries below this are dropped (their total stays far below TOLERANCE)
MAX_SQUARINGS = 64  # 2^64 steps: the leak alone absorbs any chain long before


def session(master: str | None = "local[2]", *, shuffle_partitions: int = 8, app: str = "selflearn") -> SparkSession:
    """A SparkSession for mining: UTC, no UI, this Python on the executors, loopback driver for local masters
    (``master`` None: the one spark-submit was given)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.sql.adaptive.enabled", "true")
    )
    if master is not None:
        builder = builder.master(master)
    if master is not None and master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def read_logs(spark: SparkSession, root: str) -> tuple[DataFrame, DataFrame | None]:
    """The turns and feedback of a dataset written by ``engines.dataset`` (local path or any Hadoop URL)."""
    tables: dict[str, DataFrame | None] = {}
    for kind in (TURNS, FEEDBACK):
        path = f"{root.rstrip('/')}/{kind}"
        try:
            tables[kind] = spark.read.option("basePath", path).parquet(path).drop(*PARTITIONS[kind])
        except AnalysisException:
            tables[kind] = None  # never written (no feedback yet)
    turns = tables[TURNS]
    if turns is None:
        from selflearn.errors import NotFound

        raise NotFound(f"no turns under {root}/{TURNS}: export the logs first (selflearn export --parquet DIR)")
    return turns, tables[FEEDBACK]


@dataclass
class SparkMiner:
    """``SparkMiner(config, spark).fit(turns, feedback, homes=...) -> RewriteTables``."""

    spark: SparkSession
    "The session the plan runs in."
    config: MiningConfig
    "The same knobs as the embedded ``RewriteMiner``."

    def fit(self, turns: DataFrame, feedback: DataFrame | None = None, *, homes: Sequence[Home] = ()) -> RewriteTables:
        """Lexical global and personal tables; with ``homes`` also the pattern table (delexicalised forms)."""
        scored = score(turns, feedback, self.config.signals)
        requests = self._requests(scored).cache()
        hygiene = Hygiene.for_homes(homes)
        try:
            tables = self._fit_forms(requests, hygiene)
            if homes:
                patterns = delexicalise(requests, homes).cache()
                try:
                    tables.pattern_table = fillable(self._fit_forms(patterns, hygiene).global_table)
                finally:
                    patterns.unpersist()
        finally:
            requests.unpersist()
            scored.unpersist()
        return tables

    def _requests(self, scored: DataFrame) -> DataFrame:
        """``mining.linked_requests`` with the rule baseline: the non-meta turns and their rephrase link."""
        c = self.config
        is_rephrase = (
            (F.col("gap_s") <= c.pair_window_s)
            & ((F.col("similarity") >= c.similarity_min) | F.col("result_status").isin(*NO_RESULT_STATUSES))
            & ~F.col("next_status").isin("feedback", "teach")
        )
        columns = ("turn_id", "user_id", "home_id", "ts", "form", "next_form", "asr_text", "rewritten_text")
        more = ("nlu_intent", "nlu_slots", "result_status", "defect", "next_turn_id")
        return scored.where(~F.col("meta")).select(
            *columns, *more, F.coalesce(is_rephrase, F.lit(False)).alias("is_rephrase")
        )

    def _fit_forms(self, requests: DataFrame, hygiene: Hygiene) -> RewriteTables:
        c = self.config
        miner = RewriteMiner(c)
        ch = chains(requests).cache()
        try:
            solved = absorb(ch)
            form_stats = requests.groupBy("form").agg(F.avg(F.col("defect").cast("double")).alias("defect_rate"))
            source_intents = _mode(ch, ["form"], "nlu_intent", "source_intent").join(
                _mode(ch, ["form"], "nlu_slots", "source_slots"), on="form"
            )
            evidence = ch.where(F.col("target").isNotNull())
            pairs = evidence.groupBy("form", "target").agg(
                F.count(F.lit(1)).alias("support"),
                F.countDistinct("user_id").alias("distinct_users"),
                F.countDistinct("home_id").alias("distinct_homes"),
            )
            pairs = pairs.join(_mode(evidence, ["form", "target"], "target_form", "target_form"), on=["form", "target"])
            described = _describe(
                solved.join(pairs, on=["form", "target"]).join(form_stats, on="form", how="left"), source_intents
            )
            candidates = described.where(
                (F.col("support") >= c.min_support)
                & (F.col("distinct_users") >= c.min_users)
                & (F.col("distinct_homes") >= c.min_homes)
                & (F.col("probability") >= c.min_probability)
                & (F.col("defect_rate") >= c.min_source_defect_rate)
            )
            global_table = miner.guarded(_to_polars(candidates), hygiene)
            best = self._personal_best(evidence, ch, source_intents)
            personal = miner.personal_kept(_to_polars(best), global_table, hygiene)
        finally:
            ch.unpersist()
        return RewriteTables(global_rows(global_table), personal_rows(personal))

    def _personal_best(self, evidence: DataFrame, ch: DataFrame, source_intents: DataFrame) -> DataFrame:
        """Each user's best repair per source (most support, then the first target), past the personal floors that
        need no text: only these rows come to the driver."""
        c = self.config
        keys = ["user_id", "form", "target"]
        tries = ch.groupBy("user_id", "form").agg(F.count(F.lit(1)).alias("tries"))
        own = (
            evidence.groupBy(*keys)
            .agg(F.count(F.lit(1)).alias("support"))
            .join(_mode(evidence, keys, "target_form", "target_form"), on=keys)
            .join(tries, on=["user_id", "form"])
            .withColumns({"probability": F.col("support") / F.col("tries"), "distinct_users": F.lit(1).cast("long")})
        )
        ranked = Window.partitionBy("user_id", "source").orderBy(F.desc("support"), F.asc("target"))
        best = _describe(own, source_intents).withColumn("_rank", F.row_number().over(ranked))
        return best.where(
            (F.col("_rank") == 1)
            & (F.col("support") >= c.personal_min_support)
            & (F.col("probability") >= c.min_probability)
            & (~F.col("domain_change") | (F.col("support") >= c.personal_domain_change_support))
        ).drop("_rank")


def chains(requests: DataFrame) -> DataFrame:
    """``mining.chains``: per defective turn its transition (``to_kind``, ``to_form``) and its chain's outcome."""
    df = with_form(requests.withColumn("nlu_text", F.coalesce("rewritten_text", "asr_text")), "nlu_text", "effective")
    df = df.withColumns(
        {
            "ok": (F.col("result_status") == "success") & ~F.col("defect"),
            "link": F.col("defect") & F.col("is_rephrase") & F.col("next_turn_id").isNotNull(),
            "outcome": F.concat(F.coalesce("nlu_intent", F.lit("")), F.lit("|"), F.col("nlu_slots")),
        }
    )
    linked_in = F.coalesce(F.lag("link").over(by_user()), F.lit(False))
    so_far = by_user().rowsBetween(Window.unboundedPreceding, Window.currentRow)
    df = df.withColumn("chain", F.sum((~linked_in).cast("long")).over(so_far))
    whole = (
        Window.partitionBy("user_id", "chain")
        .orderBy("ts", "turn_id")
        .rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    )
    df = df.withColumns(
        {
            "next_ok": F.lead("ok").over(by_user()),
            "next_outcome": F.lead("outcome").over(by_user()),
            "end_ok": F.last("ok").over(whole),
            "end_outcome": F.last("outcome").over(whole),
            "end_form": F.last("effective").over(whole),
        }
    )
    none = F.lit(None).cast("string")
    return df.where(F.col("defect")).select(
        "turn_id",
        "user_id",
        "home_id",
        "form",
        "nlu_intent",
        "nlu_slots",
        F.when(~F.col("link"), "gave_up").when(F.col("next_ok"), "ok").otherwise("fail").alias("to_kind"),
        F.when(~F.col("link"), none)
        .when(F.col("next_ok"), F.col("next_outcome"))
        .otherwise(F.col("next_form"))
        .alias("to_form"),
        F.when(F.col("end_ok"), F.col("end_outcome")).alias("target"),
        F.when(F.col("end_ok"), F.col("end_form")).alias("target_form"),
    )


def absorb(transitions: DataFrame) -> DataFrame:
    """``mining.absorb``: per failing form its most probable success state and absorption probability.

    Q (failing -> failing, times 1 - ``LEAK``) and R (failing -> success) are row-normalised counts. Repeated
    squaring sums the series B = sum_k Q^k R in doublings: B += P B, P = P P (P starts as Q), each a join and a
    group-by over (state, state) pairs, never over turns; it stops when every row of P has less than ``TOLERANCE``
    mass left, which bounds what B still misses. Ties go to the smallest target, as the embedded argmax does.
    """
    counts = transitions.groupBy("form", "to_kind", "to_form").agg(F.count(F.lit(1)).alias("n"))
    totals = transitions.groupBy("form").agg(F.count(F.lit(1)).alias("total"))
    rows = counts.join(totals, on="form").withColumn("p", F.col("n") / F.col("total"))
    states = transitions.select(F.col("form").alias("j")).distinct()
    q = rows.where(F.col("to_kind") == "fail").select(F.col("form").alias("i"), F.col("to_form").alias("j"), "p")
    q = q.join(states, on="j").select("i", "j", (F.col("p") * (1.0 - LEAK)).alias("p")).localCheckpoint()
    b = rows.where(F.col("to_kind") == "ok").select(F.col("form").alias("i"), F.col("to_form").alias("t"), "p")
    b = b.localCheckpoint()
    p = q
    for _ in range(MAX_SQUARINGS):
        left = p.groupBy("i").agg(F.sum("p").alias("mass")).agg(F.max("mass")).first()
        if left is None or left[0] is None or left[0] < TOLERANCE:
            break
        step = _product(p, b.withColumnRenamed("i", "j"), "t")
        b = b.unionByName(step).groupBy("i", "t").agg(F.sum("p").alias("p")).localCheckpoint()
        p = _product(p, p.select(F.col("i").alias("j"), F.col("j").alias("k"), "p"), "k").withColumnRenamed("k", "j")
        p = p.where(F.col("p") >= PRUNE).localCheckpoint()
    else:
        from selflearn.errors import SelflearnError

        raise SelflearnError(f"the absorbing chain did not converge in {MAX_SQUARINGS} squarings")
    ranked = Window.partitionBy("i").orderBy(F.desc("p"), F.asc("t"))
    best = b.withColumn("_rank", F.row_number().over(ranked)).where(F.col("_rank") == 1)
    probability = F.least(F.greatest(F.col("p"), F.lit(0.0)), F.lit(1.0))
    return best.select(F.col("i").alias("form"), F.col("t").alias("target"), probability.alias("probability")).where(
        F.col("probability") > 0
    )


def _product(left: DataFrame, right: DataFrame, column: str) -> DataFrame:
    """Sparse matrix product: left (i, j, p) times right (j, ``column``, p), summed over j."""
    joined = left.join(right.withColumnRenamed("p", "_p"), on="j")
    return joined.groupBy("i", column).agg(F.sum(F.col("p") * F.col("_p")).alias("p"))


def _mode(frame: DataFrame, keys: list[str], column: str, alias: str) -> DataFrame:
    """``mining._mode``: per key the most frequent value (null counts as a value), ties to the smallest."""
    counted = frame.groupBy(*keys, F.coalesce(F.col(column), F.lit("")).alias("_v")).agg(F.count(F.lit(1)).alias("_n"))
    ranked = Window.partitionBy(*keys).orderBy(F.desc("_n"), F.asc("_v"))
    top = counted.withColumn("_rank", F.row_number().over(ranked)).where(F.col("_rank") == 1)
    return top.select(*keys, F.when(F.col("_v") != "", F.col("_v")).alias(alias))


def intent_domain(intent: Column) -> Column:
    """``mining.intent_domain`` as a Spark expression."""
    (first, first_pattern), *rest = INTENT_FAMILIES
    expr = F.when(intent.rlike(first_pattern), F.lit(first))
    for name, pattern in rest:
        expr = expr.when(intent.rlike(pattern), F.lit(name))
    return expr.otherwise(F.lower(intent))


def _describe(rows: DataFrame, source_intents: DataFrame) -> DataFrame:
    """``mining._describe``: outcome keys -> rewrite rows (target wording, intents, domain change), no no-ops."""
    head = F.split(F.col("target"), r"\|", 2)
    df = rows.join(source_intents, on="form", how="left").withColumns(
        {
            "target_intent": F.when(head[0] != "", head[0]),
            "target_slots": F.when(F.size(head) > 1, head[1]),
        }
    )
    change = intent_domain(F.col("source_intent")) != intent_domain(F.col("target_intent"))
    df = df.withColumn("domain_change", F.coalesce(change, F.lit(False))).drop("target")
    df = df.withColumnsRenamed({"form": "source", "target_form": "target"})
    return df.where(F.col("target").isNotNull() & (F.col("source") != F.col("target")))


def _to_polars(frame: DataFrame) -> pl.DataFrame:
    """A small Spark result (candidate rules) on the driver as Polars, strings as plain ``String``."""
    result = pl.from_arrow(frame.toArrow())
    assert isinstance(result, pl.DataFrame)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m selflearn.engines.spark`` / ``spark-submit``: mine a Parquet log dataset, write the tables."""
    parser = argparse.ArgumentParser(prog="python -m selflearn.engines.spark", description=main.__doc__)
    parser.add_argument("--parquet", required=True, help="log dataset root (selflearn export --parquet DIR)")
    parser.add_argument("--out", required=True, type=Path, help="folder for the rewrite tables")
    parser.add_argument("--master", default=None, help="Spark master (default: spark-submit's, else local[2])")
    parser.add_argument("--home", action="append", type=Path, default=[], help="home YAML for pattern rules")
    args = parser.parse_args(argv)
    from selflearn.home import load_home

    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ  # spark-submit started the JVM and chose the master
    spark = session(args.master or (None if under_submit else "local[2]"), shuffle_partitions=64)
    try:
        turns, feedback = read_logs(spark, args.parquet)
        tables = SparkMiner(spark, MiningConfig()).fit(turns, feedback, homes=[load_home(h) for h in args.home])
        tables.save(args.out)
        sys.stdout.write(f"{args.out}\n")  # the command's result: where the tables are
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
