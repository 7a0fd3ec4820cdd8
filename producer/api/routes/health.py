"""Health, readiness and metrics: no API key needed (probes and scrapers have none)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import Response

from producer.api.metrics import metrics_response
from producer.api.routes.common import json_response
from producer.api.schemas import Health
from shared.db.engine import get_engine
from shared.settings import redact_url

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_S = 3.0


@router.get("/health", response_model=Health, summary="Liveness")
async def health() -> Response:
    """The server answers (it checks nothing else: a database outage must not restart it)."""
    return json_response({"status": "ok", "checks": {}})


@router.get(
    "/health/ready",
    response_model=Health,
    summary="Readiness",
    responses={503: {"model": Health, "description": "Something it needs is unreachable"}},
)
async def ready(request: Request) -> Response:
    """Whether it can serve: the database, the broker and the result backend answer."""
    app = request.app.state.celery
    checks = {
        "database": _database,
        "broker": lambda: app.connection_for_write().ensure_connection(max_retries=1),
        "result backend": lambda: app.backend.get_task_meta("mlq-api-readiness"),
    }
    found = await asyncio.gather(*(_check(check) for check in checks.values()))
    report = dict(zip(checks, found, strict=True))
    healthy = all(value == "ok" for value in report.values())
    return json_response(
        {"status": "ok" if healthy else "unavailable", "checks": report}, 200 if healthy else 503
    )


def _database() -> None:
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))


async def _check(check: object) -> str:
    try:
        await asyncio.wait_for(asyncio.to_thread(check), CHECK_TIMEOUT_S)  # type: ignore[arg-type]
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return redact_url(reason) if "://" in reason else reason
    return "ok"


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    """Requests, latency histograms, group sizes and waits, in Prometheus' text format."""
    return metrics_response()
