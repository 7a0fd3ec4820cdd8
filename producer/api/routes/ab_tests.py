"""A/B tests: start, list, show, stop, plot: the client's calls (producer/ab.py), as the
CLI makes them, from the database alone (no worker needed)."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path as FilePath
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from producer.ab_plot import plot_report
from producer.api import idempotency
from producer.api.auth import require
from producer.api.problems import Problem
from producer.api.routes.common import ERRORS, json_response
from producer.api.schemas import ABTestRequest, ABTestSummary
from producer.client import Client

router = APIRouter(tags=["A/B tests"], responses=ERRORS, dependencies=[Depends(require("admin"))])


def _client(request: Request) -> Client:
    return Client(request.app.state.celery)


def _who(request: Request) -> str:
    key = getattr(request.state, "api_key", None)
    return f"api key #{key.id} {key.name}"[:128] if key else "api (auth off)"


async def start_test(request: Request, body: ABTestRequest) -> tuple[int, dict[str, Any]]:
    started = await asyncio.to_thread(
        _client(request).start_ab_test,
        endpoint=body.endpoint,
        a=body.a,
        b=body.b,
        duration=timedelta(seconds=body.duration_s),
        mode=body.mode,
        rule=body.rule,
        split=body.split,
        min_labelled=body.min_labelled,
        min_coverage=body.min_coverage,
        label_delay=timedelta(seconds=body.label_delay_s),
        alpha=body.alpha,
        guardrail_alpha=body.guardrail_alpha,
        latency_margin=body.latency_margin,
        title=body.title,
        created_by=_who(request),
    )
    return 201, started


@router.post(
    "/v1/ab-tests", status_code=201, summary="Start an A/B test", response_model=ABTestSummary
)
async def start(request: Request, body: ABTestRequest) -> Response:
    """A challenger (b) against the endpoint's production algorithm (a), each NAME or
    NAME@VERSION; split mode shares the endpoint's default traffic, shadow mode has B
    score the same records beside A. Beat ends it once the evidence is conclusive."""
    return await idempotency.idempotent(
        request, await request.body(), lambda: start_test(request, body)
    )


@router.get("/v1/ab-tests", summary="Every A/B test", response_model=list[ABTestSummary])
async def tests(request: Request) -> Response:
    return json_response(await asyncio.to_thread(_client(request).ab_tests))


async def report(request: Request, test_id: int) -> dict[str, Any]:
    return await asyncio.to_thread(_client(request).ab_report, test_id)


@router.get(
    "/v1/ab-tests/{test_id}", summary="Live figures, or how it ended", response_model=ABTestSummary
)
async def show(request: Request, test_id: int = Path(ge=1, le=2**31 - 1)) -> Response:
    return json_response(await report(request, test_id))


async def stop_test(request: Request, test_id: int) -> tuple[int, dict[str, Any]]:
    client = _client(request)
    return 200, await asyncio.to_thread(client.stop_ab_test, test_id, ended_by=_who(request))


@router.post(
    "/v1/ab-tests/{test_id}/stop", summary="Evaluate and end it now", response_model=ABTestSummary
)
async def stop(request: Request, test_id: int = Path(ge=1, le=2**31 - 1)) -> Response:
    """Promotes B only if it really won; a test already ended says how it ended."""
    return await idempotency.idempotent(
        request, await request.body(), lambda: stop_test(request, test_id)
    )


@router.get(
    "/v1/ab-tests/{test_id}/plot.png",
    summary="Each arm's accuracy over time, as a PNG",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def plot(request: Request, test_id: int = Path(ge=1, le=2**31 - 1)) -> Response:
    """Needs the plot extra (matplotlib) on the server: 501 without it."""
    figures = await report(request, test_id)

    def draw() -> bytes:
        with tempfile.TemporaryDirectory() as folder:
            path = FilePath(folder) / "plot.png"
            plot_report(figures, path=path)
            return path.read_bytes()

    try:
        png = await asyncio.to_thread(draw)
    except ModuleNotFoundError:  # matplotlib, loaded by plot_report
        raise Problem(
            501, "not_installed", "plots need the plot extra on the server: mlqueue[plot]"
        ) from None
    return Response(png, media_type="image/png")
