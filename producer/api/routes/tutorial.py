"""The routes of the "deploy ML models with Django" tutorial, so that a client written
for it works unchanged: its notebook posts records (form-encoded, as ``requests.post(url,
record)`` sends them, or JSON), gives feedback with PUT, starts and stops A/B tests.

Its answers keep the tutorial's shapes, errors included: ``{"status": "Error",
"message": ...}`` with 400, as its views answered, plus this API's ``code`` and
``field``. Everything else is the v1 API underneath.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.responses import Response

from producer.api.auth import require
from producer.api.bodies import json_or_form
from producer.api.predicting import link
from producer.api.problems import Problem
from producer.api.routes.common import ERRORS, json_response, predictions
from producer.api.routes.feedback import give_feedback
from producer.client import Client
from shared.contracts import MAX_REQUEST_ID_LENGTH, STATUS_OK
from shared.db.engine import session_scope
from shared.db.models import Endpoint
from shared.registry import list_algorithms
from shared.settings import get_settings

router = APIRouter(prefix="/api/v1", tags=["tutorial"], responses=ERRORS)
# The tutorial's A/B tests run until stopped: this long, unless stopped before.
TUTORIAL_TEST_DURATION = timedelta(days=30)
FORM_OR_JSON = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
        },
    }
}


class TutorialPrediction(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str
    request_id: str | None = None
    label: str | None = None
    probability: float | None = None
    message: str | None = None


class TutorialABTest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field("", max_length=256)
    created_by: str = Field("tutorial", max_length=128)
    parent_mlalgorithm_1: int = Field(ge=1, le=2**31 - 1)
    parent_mlalgorithm_2: int = Field(ge=1, le=2**31 - 1)


def _tutorial_error(problem: Problem) -> Response:
    return json_response(
        {
            "status": "Error",
            "message": problem.detail,
            "code": problem.code,
            "field": problem.field,
        },
        400,
    )


@router.get("/endpoints", summary="Endpoints", dependencies=[Depends(require("predict"))])
async def endpoints() -> Response:
    def read() -> list[dict[str, Any]]:
        with session_scope() as session:
            rows = session.execute(select(Endpoint).order_by(Endpoint.id)).scalars()
            return [
                {"id": e.id, "name": e.name, "owner": e.owner, "created_at": e.created_at}
                for e in rows
            ]

    return json_response(await asyncio.to_thread(read))


@router.get("/mlalgorithms", summary="Algorithms", dependencies=[Depends(require("predict"))])
async def algorithms() -> Response:
    def read() -> list[dict[str, Any]]:
        with session_scope() as session:
            return [
                {
                    "id": a.id,
                    "name": a.name,
                    "description": a.description,
                    "version": a.version,
                    "owner": a.owner,
                    "created_at": a.created_at,
                    "parent_endpoint": a.endpoint,
                    "current_status": a.status,
                }
                for a in list_algorithms(session)
            ]

    return json_response(await asyncio.to_thread(read))


@router.post(
    "/{endpoint_name}/predict",
    summary="The tutorial's prediction: waits for the answer",
    response_model=TutorialPrediction,
    responses={
        400: {
            "model": TutorialPrediction,
            "description": "The tutorial's error body (a refused record), or a problem "
            "document (a body that is not JSON or a form)",
            "content": {
                "application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/ProblemDocument"}
                }
            },
        }
    },
    dependencies=[Depends(require("predict"))],
    openapi_extra=FORM_OR_JSON,
)
async def predict(
    request: Request,
    endpoint_name: str = Path(max_length=128),
    status: str | None = Query(None, max_length=128),
    version: str | None = Query(None, max_length=128),
) -> Response:
    """The record as the body (JSON or form-encoded). `?status=ab_testing` takes part in
    the endpoint's running A/B test, as in the tutorial."""
    record = await json_or_form(request)
    try:
        outcome = await predictions(request).predict(
            endpoint=endpoint_name,
            record=record,
            status=status or None,
            version=version or None,
            wait=get_settings().api_max_wait_s,
        )
    except Problem as problem:
        if problem.status in (401, 403, 413, 415) or problem.status >= 500:
            raise
        return _tutorial_error(problem)
    result = outcome.result
    if result is None or result.get("status") != STATUS_OK:
        if result is not None and result.get("error"):
            return _tutorial_error(
                Problem(
                    400,
                    result["error"]["code"],
                    result["error"]["message"],
                    field=result["error"].get("field"),
                )
            )
        return json_response(
            {
                "status": "QUEUED",
                "request_id": outcome.request_id,
                "links": {"self": link(outcome.request_id)},
            },
            202,
        )
    return json_response(
        {
            "probability": result.get("probability"),
            "label": result.get("label") if result.get("value") is None else result["value"],
            "status": "OK",
            "request_id": outcome.request_id,
        }
    )


@router.put(
    "/mlrequests/{request_id}",
    summary="The tutorial's feedback: the true label of a request",
    dependencies=[Depends(require("feedback"))],
    openapi_extra=FORM_OR_JSON,
)
async def feedback(
    request: Request, request_id: str = Path(min_length=1, max_length=MAX_REQUEST_ID_LENGTH)
) -> Response:
    """Body `{"feedback": LABEL}` (JSON or form-encoded)."""
    body = await json_or_form(request)
    label = body.get("feedback")
    if label is None or isinstance(label, dict | list) or len(str(label)) > 128:
        raise Problem(
            422, "invalid_request", "feedback (the true label) is required", field="feedback"
        )
    status, outcome = await give_feedback(request, [(request_id, str(label))], 10.0)
    return json_response({"id": request_id, "feedback": str(label), **outcome}, status)


@router.post(
    "/abtests",
    status_code=201,
    summary="The tutorial's A/B test: two algorithms by id",
    dependencies=[Depends(require("admin"))],
)
async def start_ab_test(request: Request, body: TutorialABTest) -> Response:
    """`parent_mlalgorithm_1` must be the endpoint's production algorithm (the control);
    the test runs until stopped (at most 30 days), decided like `mlq ab stop`."""

    def start() -> dict[str, Any]:
        with session_scope() as session:
            found = {a.id: a for a in list_algorithms(session)}
        one, two = found.get(body.parent_mlalgorithm_1), found.get(body.parent_mlalgorithm_2)
        if one is None or two is None or one.endpoint != two.endpoint:
            raise Problem(
                422,
                "invalid_request",
                "parent_mlalgorithm_1 and _2 must be ids of two algorithms of one endpoint "
                "(GET /api/v1/mlalgorithms)",
                field="parent_mlalgorithm_2" if one else "parent_mlalgorithm_1",
            )
        started = Client(request.app.state.celery).start_ab_test(
            endpoint=one.endpoint,
            a=f"{one.name}@{one.version}",
            b=f"{two.name}@{two.version}",
            duration=TUTORIAL_TEST_DURATION,
            title=body.title or None,
            created_by=body.created_by,
        )
        return {**started, "parent_mlalgorithm_1": one.id, "parent_mlalgorithm_2": two.id}

    return json_response(await asyncio.to_thread(start), 201)


@router.post(
    "/stop_ab_test/{test_id}",
    summary="The tutorial's stop: decide and end the test",
    dependencies=[Depends(require("admin"))],
)
async def stop_ab_test(request: Request, test_id: int = Path(ge=1, le=2**31 - 1)) -> Response:
    client = Client(request.app.state.celery)
    ended = await asyncio.to_thread(client.stop_ab_test, test_id, ended_by="tutorial stop_ab_test")
    summary = ended.get("summary") or {}
    return json_response(
        {"message": "AB Test finished.", "summary": summary.get("text", summary), **ended}
    )
