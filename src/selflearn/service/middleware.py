"""The service's ASGI guard: request counts and latency for ``GET /metrics``, and the body size limit."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse

MAX_BODY_BYTES = 64 * 1024
LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 250, 1000)


def error_response(code: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=code, headers=headers)


@dataclass
class Metrics:
    """Counters and latency histograms, printed in the Prometheus text format by ``GET /metrics``."""

    requests: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    """(method, route, status) -> requests answered."""
    latency: dict[str, list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))
    )
    """Route -> request counts per latency bucket (``LATENCY_BUCKETS_MS``, then +Inf)."""
    latency_sum: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Route -> total latency, in ms."""
    events: Counter[str] = field(default_factory=Counter)
    """Event name -> count (turn, conversation and result statuses, feedback answers, teachings)."""

    def observe(self, method: str, route: str, status: int, ms: float) -> None:
        self.requests[(method, route, status)] += 1
        buckets = self.latency[route]
        i = next((i for i, b in enumerate(LATENCY_BUCKETS_MS) if ms <= b), len(LATENCY_BUCKETS_MS))
        buckets[i] += 1
        self.latency_sum[route] += ms

    def render(self, artifact_version: str | None) -> str:
        lines = [
            "# HELP selflearn_requests_total HTTP requests by method, route and status.",
            "# TYPE selflearn_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.requests.items()):
            lines.append(f'selflearn_requests_total{{method="{method}",route="{route}",status="{status}"}} {n}')
        lines += [
            "# HELP selflearn_request_duration_ms Request latency in milliseconds.",
            "# TYPE selflearn_request_duration_ms histogram",
        ]
        for route, buckets in sorted(self.latency.items()):
            total = 0
            for bound, n in zip([*LATENCY_BUCKETS_MS, "+Inf"], buckets, strict=True):
                total += n
                lines.append(f'selflearn_request_duration_ms_bucket{{route="{route}",le="{bound}"}} {total}')
            lines.append(f'selflearn_request_duration_ms_sum{{route="{route}"}} {self.latency_sum[route]:.3f}')
            lines.append(f'selflearn_request_duration_ms_count{{route="{route}"}} {total}')
        lines += [
            "# HELP selflearn_events_total Turns, teachings and feedback.",
            "# TYPE selflearn_events_total counter",
        ]
        for name, n in sorted(self.events.items()):
            lines.append(f'selflearn_events_total{{event="{name}"}} {n}')
        lines += ["# HELP selflearn_artifact_info The artifact set in service.", "# TYPE selflearn_artifact_info gauge"]
        lines.append(f'selflearn_artifact_info{{version="{artifact_version or "none"}"}} 1')
        return "\n".join(lines) + "\n"


class Guard:
    """Plain ASGI (cheaper than a Starlette ``BaseHTTPMiddleware``): counts and times every request for ``/metrics``,
    and refuses bodies over ``MAX_BODY_BYTES`` (declared or streamed) with 413 before anything parses them; a body
    within the limit is read whole here and handed on unchanged."""

    def __init__(self, app: Callable[..., Awaitable[None]], metrics: Metrics, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.metrics = metrics
        self.limit = limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._limited(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(scope["method"], route, status, (time.perf_counter() - start) * 1000.0)

    async def _limited(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await error_response(413, f"request body over {self.limit} bytes")(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # client went away: let the app see the disconnect
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await error_response(413, f"request body over {self.limit} bytes")(scope, receive, send)
                return
        replayed = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
