"""``selflearn bench ...``: every speed claim, as a ratio against a baseline measured in the same run."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:
    pass
from selflearn.cli.app import JsonOption, SeedOption, _bench_table, _print_json, err, out

bench_app = typer.Typer(help="Benchmarks: speed and memory, as ratios against a baseline measured in the same run.")


@bench_app.command("ingest")
def bench_ingest(
    rows: Annotated[int, typer.Option("--rows", min=1, help="Turns per file format.")] = 200_000,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Ingest rows/s for Parquet and JSONL (with validation) vs raw DuckDB inserts without validation."""
    from selflearn.bench.ingest import ingest_bench

    result = ingest_bench(rows, seed=seed)
    if as_json:
        _print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"bench ingest ({rows:,} turns)")
    for col in ("format", "rows/s", "rows/min", "baseline rows/s", "ratio"):
        table.add_column(col, justify="right")
    for fmt in ("parquet", "jsonl"):
        r = result[fmt]
        table.add_row(
            fmt,
            f"{r['rows_per_s']:,.0f}",
            f"{r['rows_per_min']:,.0f}",
            f"{r['baseline_rows_per_s']:,.0f}",
            f"{r['ratio_vs_baseline']:.2f}",
        )
    out.print(table)


def _sizes(value: str) -> list[int]:
    """``--sizes 10000,100000``: positive whole numbers."""
    try:
        sizes = [int(s) for s in value.split(",") if s.strip()]
    except ValueError as e:
        raise typer.BadParameter(f"{value!r} is not a list of whole numbers", param_hint="'--sizes'") from e
    if not sizes or min(sizes) < 1:
        raise typer.BadParameter(f"{value!r}: give one or more sizes of at least 1", param_hint="'--sizes'")
    return sizes


@bench_app.command("rewrite")
def bench_rewrite(
    sizes: Annotated[str, typer.Option("--sizes", help="Index sizes (forms), comma-separated.")] = "10000,100000",
    million: Annotated[
        bool, typer.Option("--million", help="Also 1M forms and 1M retrieval entries (~4 GB RAM, a few min to build).")
    ] = False,
    queries: Annotated[int, typer.Option("--queries", min=1, help="Timed lookups per kind and size.")] = 300,
    utterances: Annotated[int, typer.Option("--utterances", min=1, help="Utterances for the runtime ratio.")] = 300,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Online rewrite lookup p50/p99 vs index size (mined rules; retrieval over what works: encode + ANN + rank),
    and a runtime turn with rewriting vs without (same run)."""
    from selflearn.bench.retrieval import run as run_retrieval
    from selflearn.bench.rewrite import run_bench

    every = [*_sizes(sizes), *([1_000_000] if million else [])]
    result = run_bench(every, queries=queries, utterances=utterances, seed=seed)
    result["retrieval"] = run_retrieval(every, queries=queries, seed=seed)
    if as_json:
        _print_json(result)
        return
    from rich.table import Table

    table = Table(title="bench rewrite: online lookup (ms)")
    cols = ("exact_p50_ms", "exact_p99_ms", "near_p50_ms", "near_p99_ms", "pass_p50_ms", "pass_p99_ms")
    for col in ("forms", "build s", *(c.removesuffix("_ms") for c in cols)):
        table.add_column(col, justify="right")
    for row in result["lookup"]:
        table.add_row(f"{row['forms']:,}", f"{row['build_seconds']:.1f}", *(f"{row[k]:.3f}" for k in cols))
    out.print(table)
    found = Table(title="bench rewrite: retrieval over what works, failing requests (ms)")
    cols = ("p50_ms", "p99_ms", "cpu_p50_ms", "cpu_p99_ms", "encode_p50_ms", "encode_p99_ms")
    for col in ("entries", "build s", *(c.removesuffix("_ms") for c in cols), "rewritten"):
        found.add_column(col, justify="right")
    for row in result["retrieval"]:
        cells = (f"{row[k]:.3f}" for k in cols)
        found.add_row(f"{row['entries']:,}", f"{row['build_seconds']:.1f}", *cells, f"{row['accepted_rate']:.2f}")
    out.print(found)
    out.print({k: v for k, v in result.items() if k not in ("lookup", "retrieval")})


@bench_app.command("interpret")
def bench_interpret(
    per_intent: Annotated[int, typer.Option("--per-intent", min=1, help="hassil samples per intent and home.")] = 8,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Best of N timings per utterance.")] = 3,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Full pipeline vs plain hassil ``recognize`` per utterance (median, p99, ratio), same utterances, same run."""
    import json

    from selflearn.bench import interpret as bench
    from selflearn.home import shipped_homes

    report = bench.run(shipped_homes(), per_intent=per_intent, repeats=repeats, seed=seed)
    if as_json:
        print(json.dumps({k: round(v, 4) for k, v in report.items()}))
        return
    for key, value in report.items():
        out.print(f"{key:28} {value:10.3f}")


@bench_app.command("serve")
def bench_serve(
    requests: Annotated[int, typer.Option("--requests", min=1, help="Timed interpret requests.")] = 3000,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Requests in flight.")] = 4,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Load the service on 127.0.0.1: interpret req/s, p50/p99, errors; GET /healthz as the same-run baseline."""
    from selflearn.bench.serve import run_bench

    result = run_bench(requests=requests, concurrency=concurrency, seed=seed)
    if as_json:
        print(json.dumps(result))
        return
    out.print(result)


@bench_app.command("dashboard")
def bench_dashboard(
    turns: Annotated[int, typer.Option("--turns", min=1, help="Generated turns in the store.")] = 1_000_000,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Timed loads of each page.")] = 5,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Every dashboard page's load time on 127.0.0.1 with TURNS in the store; GET /healthz as the same-run baseline."""
    from selflearn.bench.dashboard import run_bench

    result = run_bench(turns=turns, repeats=repeats, seed=seed)
    if as_json:
        print(json.dumps(result))
        return
    out.print(result)


@bench_app.command("wyoming")
def bench_wyoming(
    requests: Annotated[int, typer.Option("--requests", help="Timed requests per kind.")] = 1000,
    warmup: Annotated[int, typer.Option("--warmup", help="Untimed requests per kind first.")] = 50,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Wyoming round trip (new connection per request, as HA) vs HTTP interpret/conversation on 127.0.0.1: p50/p99."""
    from selflearn.bench.wyoming import run_bench

    result = run_bench(requests=requests, warmup=warmup, seed=seed)
    if as_json:
        print(json.dumps(result))
        return
    out.print(result)


@bench_app.command("simulate")
def bench_simulate(
    homes: Annotated[int, typer.Option("--homes", min=1, help="Generated homes.")] = 30,
    days: Annotated[int, typer.Option("--days", min=1, help="Days per home.")] = 2,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Processes for the parallel run.")] = 2,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Runs per mode; the fastest is kept.")] = 3,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Simulated turns per minute (1 process and --workers processes) vs the runtime alone interpreting the same
    utterances (the floor: the simulator cannot be faster than the pipeline it drives)."""
    from selflearn.bench.simulate import bench_simulate as run_bench

    result = run_bench(homes=homes, days=days, workers=workers, seed=seed, repeats=repeats)
    if as_json:
        _print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"bench simulate ({homes} homes x {days} days)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in result.items():
        table.add_row(name, f"{value:,.2f}" if isinstance(value, float) else str(value))
    out.print(table)


@bench_app.command("labels")
def bench_labels_(
    dialogues: Annotated[
        int, typer.Option("--dialogues", min=1, help="Synthetic dialogues to train and label.")
    ] = 100_000,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Label-model training time (cached MiniLM embeddings) and inference turns/s vs defect-signal scoring."""
    from selflearn.learners.labels.bench import bench_labels

    _bench_table("bench labels", bench_labels(dialogues, seed=seed), as_json)


@bench_app.command("fpi")
def bench_fpi_(
    dialogues: Annotated[
        int, typer.Option("--dialogues", min=1, help="Synthetic dialogues to train and label.")
    ] = 100_000,
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """FPI training time and dialogues/min for the learned model vs the rule baseline."""
    from selflearn.learners.labels.bench import bench_fpi

    _bench_table("bench fpi", bench_fpi(dialogues, seed=seed), as_json)


@bench_app.command("learn")
def bench_learn(
    turns: Annotated[int, typer.Option("--turns", min=1, help="Generated turns to mine.")] = 1_000_000,
    baseline_turns: Annotated[
        int, typer.Option("--baseline-turns", min=1, help="Turns for the row-by-row Python baseline.")
    ] = 100_000,
    finetune_pairs: Annotated[
        int,
        typer.Option("--finetune-pairs", help="Also time fine-tuning the retrieval encoder on this many mined pairs."),
    ] = 0,
    engine: Annotated[
        Literal["duckdb", "spark"],
        typer.Option("--engine", help="spark: mine the same logs with both engines in this run and compare."),
    ] = "duckdb",
    master: Annotated[str, typer.Option("--master", help="Spark master for --engine spark.")] = "local[2]",
    seed: SeedOption = 0,
    as_json: JsonOption = False,
) -> None:
    """Mining throughput (signals + chains + absorbing chain + guardrails) vs a row-by-row Python baseline; with
    --finetune-pairs also the encoder fine-tuning time (rewrite.finetune); with --engine spark the Spark engine
    against the embedded one on the same Parquet logs (throughput, and whether the tables are equal)."""
    from selflearn.bench.learn import learn_bench

    if engine == "spark":
        from selflearn.bench.engines import engines_bench

        result = engines_bench(turns, seed=seed, master=master, log=err.print)
        _bench_table(f"bench learn --engine spark ({turns:,} turns)", result, as_json)
        return
    _bench_table(
        f"bench learn ({turns:,} turns)",
        learn_bench(turns, seed=seed, baseline_turns=baseline_turns, finetune_pairs=finetune_pairs),
        as_json,
    )
