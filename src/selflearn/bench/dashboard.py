"""``selflearn bench dashboard``: every dashboard page's load time on loopback with a large store, against
``GET /healthz`` in the same run.

The store gets ``turns`` generated turns (``synthlogs``, spread over the shipped homes) and an artifact set learned
from a seeded sample log; the service runs in-process under uvicorn on 127.0.0.1. The first page builds the scored
snapshot of the logs in a thread; until it is done every page answers with a "still reading" page that refreshes
itself. ``first_response_ms`` is the first page's answer after the admin signs in; ``first_real_page_s`` the time from
that sign-in until a page with the logs in it (fetched every ``POLL_SECONDS``, finer than the page's own refresh, so
it measures the build rather than the refresh interval); ``reading_max_ms`` the slowest "still reading" answer. Then
each page is fetched once cold (``cold_ms``: plotly's figure code loads on the first trend page) and ``repeats`` times
more, signed in as an admin (every home) and as one home. ``every_page_under_1s`` covers every response timed: the
first ones, the "still reading" ones and those loads, while the snapshot is rebuilt in the background.
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import polars as pl

logger = logging.getLogger(__name__)

PAGES = ("/", "/dashboard/trend", "/dashboard/failures", "/dashboard/people")
POLL_SECONDS = 0.2
READING = 'id="reading"'  # the "still reading" page's marker


def _fill_store(db: Path, turns: int, seed: int) -> int:
    from selflearn.home import shipped_homes
    from selflearn.sim.synthlogs import generate
    from selflearn.store.logstore import Store

    frame, _truth = generate(turns, seed=seed)
    homes = [h.id for h in shipped_homes()]
    users = frame["user_id"].unique().sort()
    home_of = dict(zip(users.to_list(), [homes[i % len(homes)] for i in range(users.len())], strict=True))
    frame = frame.with_columns(home_id=pl.col("user_id").replace_strict(home_of))
    path = db.parent / "turns.parquet"
    frame.write_parquet(path)
    with Store(db) as store:
        store.ingest(path)
        return store.counts()["turns"]


def _time(client: httpx.Client, path: str, repeats: int) -> dict[str, float]:
    """The first (cold) load, then the median and slowest of ``repeats`` more, in milliseconds."""
    seconds = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        r = client.get(path)
        seconds.append(time.perf_counter() - start)
        r.raise_for_status()
    warm = seconds[1:]
    return {
        "cold_ms": round(seconds[0] * 1000, 1),
        "p50_ms": round(statistics.median(warm) * 1000, 1),
        "max_ms": round(max(warm) * 1000, 1),
    }


def _first_page(client: httpx.Client, token: str) -> dict[str, float]:
    """Sign in (which starts the snapshot build), then load ``/`` until it is the real page, as a browser following
    the "still reading" page's refresh would."""
    start = time.perf_counter()
    signed = client.post("/dashboard/login", data={"token": token})
    if signed.status_code != 303:
        raise RuntimeError(f"dashboard sign-in failed: {signed.status_code}")
    answers = []
    while True:
        asked = time.perf_counter()
        r = client.get("/")
        answers.append(time.perf_counter() - asked)
        r.raise_for_status()
        if READING not in r.text:
            break
        time.sleep(POLL_SECONDS)
    return {
        "first_response_ms": round(answers[0] * 1000, 1),
        "first_real_page_s": round(time.perf_counter() - start, 2),
        "reading_pages": len(answers) - 1,
        "reading_max_ms": round(max(answers[:-1], default=0.0) * 1000, 1),
    }


def run_bench(*, turns: int = 1_000_000, repeats: int = 5, seed: int = 0) -> dict[str, Any]:
    import uvicorn

    from selflearn.bench.serve import _free_port, _publish_artifacts
    from selflearn.home import shipped_homes
    from selflearn.service.app import create_app
    from selflearn.service.service import Service
    from selflearn.service.tokens import Tokens

    with tempfile.TemporaryDirectory(prefix="selflearn-bench-") as tmp:
        data = Path(tmp)
        logger.info(f"generating {turns:,} turns into a store ...")
        stored = _fill_store(data / "logs.duckdb", turns, seed)
        logger.info("learning an artifact set from a seeded sample log ...")
        version = _publish_artifacts(data / "artifacts", seed)
        homes = shipped_homes()
        tokens = Tokens(data / "tokens.json")
        admin, _ = tokens.create(home=None, admin=True)
        one, _ = tokens.create(home=homes[0].id)
        service = Service(homes, db=data / "logs.duckdb", artifacts=data / "artifacts", tokens=tokens)
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="error"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            while not server.started:
                time.sleep(0.05)
            url = f"http://127.0.0.1:{port}"
            result: dict[str, Any] = {}
            with httpx.Client(base_url=url, timeout=600) as healthz:
                result["healthz"] = _time(healthz, "/healthz", repeats * 4)
            for who, token in (("admin", admin), ("home", one)):
                with httpx.Client(base_url=url, timeout=600) as client:
                    if who == "admin":
                        logger.info("first page: scoring the logs in the background ...")
                        result |= _first_page(client, token)
                    elif client.post("/dashboard/login", data={"token": token}).status_code != 303:
                        raise RuntimeError("dashboard sign-in failed")
                    logger.info(f"pages as {who}, {repeats} each ...")
                    result[who] = {path: _time(client, path, repeats) for path in PAGES}
                    seen = re.search(r'class="count">(\d+) turns', client.get("/dashboard/trend").text)
                    result[f"{who}_turns_seen"] = int(seen.group(1)) if seen else 0
        finally:
            server.should_exit = True
            thread.join(timeout=30)
            service.close()
    loads = [t[k] for who in ("admin", "home") for t in result[who].values() for k in ("cold_ms", "max_ms")]
    slowest = max([*loads, result["first_response_ms"], result["reading_max_ms"]])
    return result | {
        "turns": stored,
        "artifacts": version,
        "slowest_page_ms": slowest,
        "every_page_under_1s": slowest < 1000,
        "slowest_vs_healthz_p50": round(slowest / max(result["healthz"]["p50_ms"], 0.1), 1),
        "repeats": repeats,
        "cores": os.cpu_count(),
    }
