"""What the route modules share: the app's services, the documented error answers, and
JSON answers written by orjson."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from producer.api.predicting import Predictions
from producer.api.schemas import ProblemDocument
from shared.settings import get_settings

PROBLEM = {"model": ProblemDocument, "content": {"application/problem+json": {}}}
# Every route may answer these; FastAPI puts them in the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {**PROBLEM, "description": "The request cannot be served as it is"},
    "5XX": {**PROBLEM, "description": "A service mlqueue needs is unavailable"},
}


def predictions(request: Request) -> Predictions:
    return request.app.state.predictions


def json_response(
    document: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(document, default=str), status, headers, media_type="application/json"
    )


def wait_seconds(wait: float | None) -> float:
    """A client's ?wait=, capped at MLQ_API_MAX_WAIT_SECONDS (a longer ask waits that long)."""
    return min(max(wait or 0.0, 0.0), get_settings().api_max_wait_s)
