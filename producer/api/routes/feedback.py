"""Feedback: the true label of one request, or of many."""

from __future__ import annotations

import asyncio

from celery.exceptions import TimeoutError as CeleryTimeoutError
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from producer.api import idempotency
from producer.api.auth import require
from producer.api.problems import Problem
from producer.api.routes.common import ERRORS, wait_seconds
from producer.api.schemas import FeedbackOutcome, FeedbackRequest
from producer.client import Client

router = APIRouter(tags=["feedback"], responses=ERRORS, dependencies=[Depends(require("feedback"))])
DEFAULT_WAIT_S = 10.0


async def give_feedback(
    request: Request, pairs: list[tuple[str, str]], wait: float
) -> tuple[int, dict[str, object]]:
    """200 with what became of the labels, or 202 when a worker has not said in time
    (they are stored all the same, as a worker gets to them)."""
    client = Client(request.app.state.celery)
    try:
        outcome = await asyncio.to_thread(client.feedback_many, pairs, timeout=wait)
    except CeleryTimeoutError:
        return 202, {"status": "sent", "labels": len(pairs)}
    return 200, dict(outcome)


@router.post(
    "/v1/feedback",
    summary="Give true labels",
    responses={
        200: {"model": FeedbackOutcome},
        202: {"description": "Sent; outcome not known yet"},
    },
)
async def feedback(
    request: Request,
    body: FeedbackRequest,
    wait: float | None = Query(None, ge=0, le=3600, description="Seconds to wait for the outcome"),
) -> Response:
    """`{"request_id", "label"}` or `{"items": [{"request_id", "label"}, ...]}`. Answers
    recorded, replaced, early (no prediction row yet: kept), unknown (never issued:
    kept, and reported) and invalid (a label the model cannot give: not stored)."""
    if body.items is not None:
        pairs = [(item.request_id, item.label) for item in body.items]
    elif body.request_id is not None and body.label is not None:
        pairs = [(body.request_id, body.label)]
    else:
        raise Problem(422, "invalid_request", "give request_id and label, or items", field="items")
    if not pairs:
        raise Problem(422, "invalid_request", "items is empty", field="items")
    seconds = wait_seconds(DEFAULT_WAIT_S if wait is None else wait)
    return await idempotency.idempotent(
        request, await request.body(), lambda: give_feedback(request, pairs, seconds)
    )
