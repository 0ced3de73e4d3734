"""``selflearn bench wyoming``: a Wyoming round trip on loopback against the HTTP service's interpret, same run.

Both servers run as their own processes (``selflearn wyoming`` and ``selflearn serve``, each with its own store)
over the same artifact set, learned from a seeded sample log so the online rewriter is loaded. One client sends a
known utterance sequentially, as Home Assistant does per request: a new TCP connection, ``transcript``, read the
``intent``; and over HTTP (keep-alive) ``POST /v1/interpret`` and ``POST /v1/conversation``. The three are
interleaved in rounds, so machine noise falls on all of them alike. Goal: Wyoming p99 < 30 ms.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from wyoming.asr import Transcript
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe
from wyoming.intent import Intent

from selflearn.bench.serve import _free_port, _publish_artifacts, _wait_ready

logger = logging.getLogger(__name__)

TEXT = "turn on the kitchen light"
HOME = "maple_house"
SATELLITE = "ep.kitchen_speaker"
USER = "maple.ana"
GOAL_P99_MS = 30.0
ROUND = 50


def _stats(ms: list[float]) -> dict[str, float]:
    lat = np.array(ms)
    return {
        "n": len(ms),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "mean_ms": round(float(lat.mean()), 2),
    }


async def _wyoming_once(port: int, i: int) -> bool:
    """One request the way HA's Wyoming conversation entity makes it; True if the answer is the expected intent."""
    context = {"conversation_id": f"bench-{i}", "satellite_id": SATELLITE}
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcript(TEXT, context=context, language="en").event())
        event = await client.read_event()
    return event is not None and Intent.is_type(event.type) and Intent.from_event(event).name == "HassTurnOn"


async def _wait_wyoming(port: int, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"wyoming service exited with {proc.returncode}")
        try:
            async with AsyncTcpClient("127.0.0.1", port) as client:
                await client.write_event(Describe().event())
                if await client.read_event() is not None:
                    return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError("wyoming service did not come up")


async def _measure(wyoming_port: int, url: str, token: str, requests: int, warmup: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    interpret_body = {"text": TEXT, "user_id": USER, "device_id": SATELLITE}
    conversation_body = {"text": TEXT, "language": "en", "satellite_id": SATELLITE, "conversation_id": "bench"}
    times: dict[str, list[float]] = {"wyoming": [], "http_interpret": [], "http_conversation": []}
    errors = dict.fromkeys(times, 0)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30.0) as http:

        async def interpret(i: int) -> bool:
            r = await http.post("/v1/interpret", json=interpret_body)
            return r.status_code == 200 and r.json()["turn"]["nlu_intent"] == "HassTurnOn"

        async def conversation(i: int) -> bool:
            r = await http.post("/v1/conversation", json=conversation_body)
            return r.status_code == 200 and r.json()["intents"][0]["name"] == "HassTurnOn"

        calls: dict[str, Callable[[int], Awaitable[bool]]] = {
            "wyoming": partial(_wyoming_once, wyoming_port),
            "http_interpret": interpret,
            "http_conversation": conversation,
        }
        for call in calls.values():
            for i in range(warmup):
                await call(-1 - i)
        for start in range(0, requests, ROUND):
            for name, call in calls.items():
                for i in range(start, min(start + ROUND, requests)):
                    t = time.perf_counter()
                    ok = await call(i)
                    times[name].append((time.perf_counter() - t) * 1000.0)
                    errors[name] += not ok
    return {name: {**_stats(ms), "errors": errors[name]} for name, ms in times.items()}


def run_bench(*, requests: int = 1000, warmup: int = 50, seed: int = 0) -> dict[str, Any]:
    from selflearn.service.tokens import Tokens

    with tempfile.TemporaryDirectory(prefix="selflearn-bench-wyoming-") as tmp:
        data = Path(tmp)
        logger.info("learning an artifact set from a seeded sample log ...")
        version = _publish_artifacts(data / "artifacts", seed)
        token, _ = Tokens(data / "tokens.json").create(home=HOME)
        env = {**os.environ, "SELFLEARN_HOME": str(data)}
        env.pop("SELFLEARN_DB", None)
        env.pop("SELFLEARN_ARTIFACTS", None)
        http_port, wyoming_port = _free_port(), _free_port()
        cli = [sys.executable, "-c", "from selflearn.cli.main import app; app()"]
        serve = [*cli, "serve", "--port", str(http_port), "--db", str(data / "http.duckdb")]
        wyoming = [*cli, "wyoming", "--uri", f"tcp://127.0.0.1:{wyoming_port}", "--home", HOME]
        wyoming += ["--db", str(data / "wyoming.duckdb")]
        procs = [
            subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for cmd in (serve, wyoming)
        ]
        load_before = os.getloadavg()[0]
        try:
            logger.info("starting the HTTP and Wyoming services ...")
            url = f"http://127.0.0.1:{http_port}"
            _wait_ready(url, procs[0])
            asyncio.run(_wait_wyoming(wyoming_port, procs[1]))
            logger.info(f"{requests} sequential requests each, interleaved in rounds of {ROUND} ...")
            result = asyncio.run(_measure(wyoming_port, url, token, requests, warmup))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=30)
    wy, http = result["wyoming"], result["http_interpret"]
    return {
        **result,
        "wyoming_vs_http_interpret_p99": round(wy["p99_ms"] / http["p99_ms"], 3),
        "goal_p99_ms": GOAL_P99_MS,
        "goal_met": wy["p99_ms"] < GOAL_P99_MS,
        "utterance": TEXT,
        "artifacts": version,
        "cores": os.cpu_count(),
        "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before / after: a shared machine
    }
