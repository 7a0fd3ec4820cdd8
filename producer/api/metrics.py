"""Prometheus metrics of the API, served at ``/metrics``.

With ``mlq serve --workers N`` (N > 1) every server process writes its figures to files
in ``PROMETHEUS_MULTIPROC_DIR`` (set by ``mlq serve``), and ``/metrics`` adds them up,
prometheus-client's multiprocess mode.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Milliseconds matter here: a prediction is answered in a few.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

REQUESTS = Counter("mlq_api_requests", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "mlq_api_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "mlq_api_group_wait_seconds",
    "Time a prediction was held in the API while its group formed",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1),
)
GROUP_SIZE = Histogram(
    "mlq_api_group_size",
    "Predictions sent together in one message",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000),
)
PREDICTION_WAIT = Histogram(
    "mlq_api_prediction_seconds",
    "Time from sending a prediction to its result: broker queue wait plus scoring",
    buckets=LATENCY_BUCKETS,
)
BATCH_RECORDS = Histogram(
    "mlq_api_batch_records",
    "Records per uploaded batch",
    buckets=(10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000),
)


def metrics_response() -> Response:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Counts and times every request by its route template (not its path, so that ids
    do not make a new series each)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = scope["method"]
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template).observe(time.perf_counter() - started)
