"""``selflearn bench serve``: a bounded load run against the real service on 127.0.0.1.

The service runs in its own process (``selflearn serve``, one uvicorn worker) with an artifact set learned from a
seeded sample log, so the online rewriter is loaded; an httpx async client keeps ``concurrency`` requests in flight.
``GET /healthz`` through the same stack, in the same run, is the baseline: the ratio says how much of the cost is
the assistant rather than HTTP. ``interpret_cold`` is the first pass over the distinct utterances (nothing
remembered yet); ``interpret`` then replays them, as a home's people repeat themselves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from selflearn.home import shipped_homes

logger = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            raise RuntimeError(f"service exited with {proc.returncode}: {said[-500:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("service did not come up")


async def _load(
    url: str, headers: dict[str, str], bodies: list[dict[str, Any]] | None, n: int, concurrency: int
) -> dict[str, float]:
    """``n`` requests, ``concurrency`` in flight. Bodies are encoded up front so the client's JSON encoding does
    not compete with the service for the same two cores."""
    payloads = [json.dumps(b).encode() for b in bodies or ()]
    headers = {**headers, "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    queue = iter(range(n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30.0) as client:

        async def worker() -> None:
            nonlocal errors
            for i in queue:
                t = time.perf_counter()
                if bodies is None:
                    r = await client.get("/healthz")
                else:
                    r = await client.post("/v1/interpret", content=payloads[i % len(payloads)])
                latencies.append((time.perf_counter() - t) * 1000.0)
                errors += r.status_code != 200

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    lat = np.array(latencies)
    return {
        "requests": n,
        "seconds": round(seconds, 3),
        "rps": round(n / seconds, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "errors": errors,
    }


def _publish_artifacts(root: Path, seed: int) -> str:
    from selflearn.artifacts import ArtifactStore
    from selflearn.learners.learn import learn
    from selflearn.sim import logsample
    from selflearn.store.logview import LogView

    sample = logsample.generate(3000, seed=seed)
    store = ArtifactStore(root)
    learn(LogView.from_records(sample.turns, sample.feedback), store)
    return store.current() or "none"


def _bodies(seed: int) -> list[dict[str, Any]]:
    """Utterances from the seeded sample log (noisy ASR included), each from a person of its home."""
    from selflearn.sim import logsample

    rng = random.Random(seed)
    sample = logsample.generate(2000, seed=seed + 1)
    homes = {h.id: h for h in shipped_homes()}
    out = []
    for t in sample.turns:
        home = homes.get(t.home_id)
        if home is not None and any(p.id == t.user_id for p in home.people):
            out.append({"text": t.asr_text, "user_id": t.user_id, "device_id": t.device_id})
    rng.shuffle(out)
    return out


def run_bench(*, requests: int = 3000, concurrency: int = 4, seed: int = 0) -> dict[str, Any]:
    from selflearn.service.tokens import Tokens

    with tempfile.TemporaryDirectory(prefix="selflearn-bench-") as tmp:
        data = Path(tmp)
        logger.info("learning an artifact set from a seeded sample log ...")
        version = _publish_artifacts(data / "artifacts", seed)
        bodies = _bodies(seed)
        home = next(h for h in shipped_homes() if h.people)
        token, _ = Tokens(data / "tokens.json").create(home=home.id)
        bodies = [b for b in bodies if any(p.id == b["user_id"] for p in home.people)]
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "SELFLEARN_HOME": str(data)}
        env.pop("SELFLEARN_DB", None)
        env.pop("SELFLEARN_ARTIFACTS", None)
        cmd = [sys.executable, "-c", "from selflearn.cli.main import app; app()", "serve", "--port", str(port)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            logger.info(f"starting the service on {url} ...")
            _wait_ready(url, proc)
            headers = {"Authorization": f"Bearer {token}"}
            logger.info(f"cold: each of {len(bodies)} distinct utterances once ...")
            cold = asyncio.run(_load(url, headers, bodies, len(bodies), concurrency))
            logger.info(f"interpret: {requests} requests, {concurrency} in flight ...")
            interpret = asyncio.run(_load(url, headers, bodies, requests, concurrency))
            logger.info(f"baseline healthz: {requests} requests ...")
            healthz = asyncio.run(_load(url, headers, None, requests, concurrency))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {
        "interpret": interpret,
        "interpret_cold": cold,
        "healthz": healthz,
        "interpret_vs_healthz_rps": round(interpret["rps"] / healthz["rps"], 3),
        "concurrency": concurrency,
        "artifacts": version,
        "cores": os.cpu_count(),
        "utterances": len(bodies),
    }
