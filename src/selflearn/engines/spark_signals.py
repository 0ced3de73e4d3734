"""``signals.DefectSignals`` as Spark DataFrame operations: the same columns, rules and weights, per user windows.

Text work (the one normaliser, the rapidfuzz similarity, delexicalisation) runs once per distinct text or pair on
the executors in Arrow batches (``mapInArrow`` calling the embedded engine's own Polars/rapidfuzz code), so both
engines agree by construction and no Python runs per log row; everything else is Spark SQL expressions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import reduce

import polars as pl
import pyarrow as pa
from pyspark.sql import Column, DataFrame, Window, WindowSpec
from pyspark.sql import functions as F

from selflearn.home import Home
from selflearn.learners.signals import META_STATUSES, NEGATION, NEGATIVE_FEEDBACK, NO_RESULT_STATUSES, SignalConfig


def by_user() -> WindowSpec:
    """Each user's turns in time order (ties by turn id), as the embedded engine sorts them."""
    return Window.partitionBy("user_id").orderBy("ts", "turn_id")


def _normalized(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    from selflearn.text import normalize_expr

    for batch in batches:
        frame = pl.DataFrame(pl.from_arrow(batch)).with_columns(form=normalize_expr(pl.col("text")))
        yield from frame.to_arrow().cast(pa.schema([("text", pa.string()), ("form", pa.string())])).to_batches()


def _similar(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    from selflearn.learners.signals import text_similarity

    schema = pa.schema([("form", pa.string()), ("next_form", pa.string()), ("similarity", pa.float64())])
    for batch in batches:
        frame = pl.DataFrame(pl.from_arrow(batch))
        frame = frame.with_columns(similarity=text_similarity(frame["form"], frame["next_form"]))
        yield from frame.to_arrow().cast(schema).to_batches()


def with_form(frame: DataFrame, text: str, alias: str) -> DataFrame:
    """``frame`` plus ``alias`` = ``text.normalize_expr(text)``, computed once per distinct text."""
    distinct = frame.select(F.col(text).alias("text")).distinct().where(F.col("text").isNotNull())
    forms = distinct.mapInArrow(_normalized, "text string, form string").localCheckpoint()  # Python runs once
    return frame.join(forms.withColumnsRenamed({"text": text, "form": alias}), on=text, how="left")


def _seconds(later: Column, earlier: Column) -> Column:
    return (F.unix_micros(later) - F.unix_micros(earlier)) / 1e6


def with_next_turn(turns: DataFrame, config: SignalConfig) -> DataFrame:
    """``signals.with_next_turn``: the form, meta, the next request turn's columns, similarity, negated."""
    df = with_form(turns, "asr_text", "form")
    df = df.withColumn("meta", F.col("result_status").isin(*META_STATUSES) | F.col("form").rlike(NEGATION))
    after, then = F.lead("ts").over(by_user()), F.lead("form").over(by_user())
    negated = (_seconds(after, F.col("ts")) <= config.rephrase_window_s) & then.rlike(NEGATION)
    df = df.withColumn("negated", F.coalesce(negated, F.lit(False)))
    requests = df.where(~F.col("meta")).withColumns(
        {
            "next_turn_id": F.lead("turn_id").over(by_user()),
            "next_form": F.lead("form").over(by_user()),
            "next_status": F.lead("result_status").over(by_user()),
            "next_barge_in": F.lead("barge_in").over(by_user()),
            "gap_s": _seconds(F.lead("ts").over(by_user()), F.col("ts")),
        }
    )
    df = requests.unionByName(df.where(F.col("meta")), allowMissingColumns=True)
    pairs = df.select("form", "next_form").distinct().where(F.col("next_form").isNotNull())
    pairs = pairs.mapInArrow(_similar, "form string, next_form string, similarity double").localCheckpoint()
    df = df.join(pairs, on=["form", "next_form"], how="left")
    return df.withColumns(
        {
            "similarity": F.coalesce(F.col("similarity"), F.lit(0.0)),
            "quick_next": F.coalesce(F.col("gap_s") <= config.rephrase_window_s, F.lit(False)),
        }
    )


def score(turns: DataFrame, feedback: DataFrame | None, config: SignalConfig) -> DataFrame:
    """``DefectSignals.score_frame`` on Spark: the turns with the signal columns, ``defect_score`` and ``defect``
    (``form_users`` is left out: no rule reads it). One scalar (the mean turn score) goes to the driver."""
    c, w = config, config.weights
    df = with_next_turn(turns, c)
    failed = F.col("result_status").isin(*NO_RESULT_STATUSES)
    if c.barge_in_flag == "interrupted":
        barge = F.col("barge_in")
    else:
        barge = F.coalesce(F.col("next_barge_in"), F.lit(False)) & F.col("quick_next")
    negative = F.lit(False)
    if feedback is not None:
        said_no = feedback.where(F.col("kind").isin("no", "correction")).select("turn_id").distinct()
        df = df.join(said_no.withColumn("said_no", F.lit(True)), on="turn_id", how="left")
        negative = F.coalesce(F.col("said_no"), F.lit(False))
    df = df.withColumns(
        {
            "barge_in_signal": barge,
            "no_result": failed,
            "explicit_negative": F.coalesce(F.col("explicit_feedback").isin(*NEGATIVE_FEEDBACK), F.lit(False))
            | negative
            | F.col("negated"),
            "repeated": F.col("quick_next") & (F.col("form") == F.col("next_form")),
            "rephrased": F.col("quick_next")
            & (F.col("form") != F.col("next_form"))
            & ((F.col("similarity") >= c.similarity_min) | failed),
        }
    )
    unhelpful = F.col("result_status") != "success"
    troubled = failed | F.col("explicit_negative") | (F.col("barge_in_signal") & unhelpful)
    ends = F.col("gap_s").isNull() | (F.col("gap_s") > c.abandon_window_s)
    df = df.withColumn("abandoned", troubled & ends)
    request = ~F.col("meta")
    names = ("barge_in_signal", "rephrased", "repeated", "abandoned", "explicit_negative", "no_result")
    df = df.withColumns({name: F.col(name) & request for name in names})
    terms = [
        ("barge_in_signal", w.barge_in),
        ("rephrased", w.rephrased),
        ("repeated", w.repeated),
        ("abandoned", w.abandoned),
        ("explicit_negative", w.explicit_negative),
        ("no_result", w.no_result),
    ]
    flags = [(F.col(name), weight) for name, weight in terms] + [
        (F.col("result_status") == "unsupported", w.unsupported)
    ]
    keep = reduce(lambda acc, t: acc * (1.0 - t[1] * F.coalesce(t[0], F.lit(False)).cast("double")), flags, F.lit(1.0))
    df = df.withColumn("turn_score", F.when(F.col("meta"), F.lit(0.0)).otherwise(1.0 - keep)).cache()
    mean = df.agg(F.avg("turn_score")).first()
    prior_mean = float(mean[0]) if mean is not None and mean[0] is not None else 0.0
    by_form = Window.partitionBy("form")
    form_rate = (F.sum("turn_score").over(by_form) + c.form_prior * prior_mean) / (
        F.count(F.lit(1)).over(by_form) + c.form_prior
    )
    score_ = 1.0 - (1.0 - F.col("turn_score")) * (1.0 - w.form * form_rate)
    score_ = F.when(F.col("meta"), F.lit(0.0)).otherwise(score_)
    return df.withColumn("defect_score", score_).withColumn("defect", F.col("defect_score") >= c.threshold)


def _delexicalised(homes: Sequence[Home]) -> object:
    """An Arrow batch function mapping (home_id, text) to its pattern with that home's names (as
    ``patterns.delexicalise_frame``); homes travel to the executors with it."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from selflearn.runtime.patterns import Delexicaliser, vocabulary
        from selflearn.text import normalize

        by_home = {h.id: Delexicaliser.for_home(h) for h in homes}
        without_home = Delexicaliser.for_names(sorted(vocabulary().items(), key=lambda kv: (-len(kv[0]), kv[0])))
        schema = pa.schema([("home_id", pa.string()), ("text", pa.string()), ("pattern", pa.string())])
        for batch in batches:
            rows = batch.to_pylist()
            patterns = [by_home.get(r["home_id"], without_home).apply(normalize(r["text"]))[0] for r in rows]
            yield pa.RecordBatch.from_arrays(
                [batch.column("home_id"), batch.column("text"), pa.array(patterns, pa.string())], schema=schema
            )

    return run


def delexicalise(requests: DataFrame, homes: Sequence[Home]) -> DataFrame:
    """``patterns.delexicalise_frame`` on Spark: ``form``, ``next_form`` and the NLU text replaced by their patterns
    (per the turn's home, once per distinct (home, text)), the NLU outcome reduced to intent + slot names."""
    nlu = F.coalesce(F.col("rewritten_text"), F.col("asr_text"))
    frame = requests.withColumn("_nlu", nlu)
    texts = reduce(
        DataFrame.unionByName,
        [frame.select("home_id", F.col(c).alias("text")) for c in ("form", "next_form", "_nlu")],
    )
    texts = texts.where(F.col("home_id").isNotNull() & F.col("text").isNotNull()).distinct()
    schema = "home_id string, text string, pattern string"
    lookup = texts.mapInArrow(_delexicalised(homes), schema).localCheckpoint()  # type: ignore[arg-type]
    for column in ("form", "next_form", "_nlu"):
        renamed = lookup.withColumnsRenamed({"text": column, "pattern": f"_{column}_pattern"})
        frame = frame.join(renamed, on=["home_id", column], how="left")
    keys = F.regexp_extract_all(F.col("nlu_slots"), F.lit(r'"\w+"\s*:'), 0)
    names = F.array_join(F.array_sort(F.transform(keys, lambda k: F.regexp_replace(k, r'^[": ]+|[": ]+$', ""))), ",")
    return frame.withColumns(
        {
            "form": F.col("_form_pattern"),
            "next_form": F.col("_next_form_pattern"),
            "asr_text": F.col("__nlu_pattern"),
            "rewritten_text": F.lit(None).cast("string"),
            "nlu_slots": F.coalesce(names, F.lit("")),
        }
    ).drop("_nlu", "_form_pattern", "_next_form_pattern", "__nlu_pattern")
