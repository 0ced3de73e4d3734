"""The ``selflearn`` command: every command group registered on the one app (the console script's entry point)."""

from __future__ import annotations

from selflearn.cli import (
    artifacts,
    bench,
    demo,
    evaluate,
    homes,
    interpret,
    learn,
    prefs,
    rewrite,
    serve,
    simulate,
    store,
    teach,
    tokens,
)
from selflearn.cli.app import app, main, version

__all__ = ["app", "main"]

app.add_typer(bench.bench_app, name="bench")
app.command()(version)
app.command("eval")(evaluate.eval_)
app.add_typer(artifacts.artifacts_app, name="artifacts")
app.command()(store.ingest)
app.command()(store.forget)
app.command()(rewrite.rewrite)
app.command()(interpret.interpret)
app.command()(demo.demo)
app.add_typer(tokens.tokens_app, name="tokens")
app.add_typer(prefs.prefs_app, name="prefs")
app.command()(serve.serve)
app.command()(serve.wyoming)
app.command()(simulate.simulate)
app.command("fpi")(learn.fpi_)
app.command("learn")(learn.learn_)
app.command("export")(store.export)
app.command()(teach.teach)
app.add_typer(homes.homes_app, name="homes")
