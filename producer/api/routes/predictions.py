"""``POST /v1/endpoints/{endpoint}/predictions`` and ``GET /v1/predictions/{id}``."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from producer.api import idempotency
from producer.api.auth import authorize, require
from producer.api.bodies import JSON, media_type, parse_json, read_body, unsupported
from producer.api.predicting import link, settle
from producer.api.problems import Problem
from producer.api.routes.common import ERRORS, json_response, predictions, wait_seconds
from producer.api.schemas import PredictionRequest, PredictionResult
from shared.contracts import MAX_REQUEST_ID_LENGTH

router = APIRouter(tags=["predictions"], responses=ERRORS)
SECURED = [Depends(require("predict"))]

WAIT = Query(
    None,
    ge=0,
    le=3600,
    description="Seconds to wait for the result: 200 with it if ready in time, else 202",
)
FIELDS = ("record", "status", "version", "assignment_key", "request_id")


@router.post(
    "/v1/endpoints/{endpoint}/predictions",
    status_code=202,
    summary="Predict one record",
    # The hot path: FastAPI solves no dependency here (measured: 15% of the server's
    # time under load); parameters and security are declared for the document only.
    responses={
        200: {"model": PredictionResult, "description": "The result (with ?wait=)"},
        202: {"model": PredictionResult, "description": "Accepted: read it by its link"},
    },
    openapi_extra={
        "parameters": [
            {
                "name": "endpoint",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "maxLength": 128},
            },
            {
                "name": "wait",
                "in": "query",
                "required": False,
                "description": WAIT.description,
                "schema": {"type": "number", "minimum": 0, "maximum": 3600},
            },
        ],
        "security": [{"HTTPBearer": []}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": PredictionRequest.model_json_schema()}},
        },
    },
)
async def predict(request: Request) -> Response:
    """Send one record to the endpoint's model. Answers 202 with the request id and its
    link at once; with `?wait=SECONDS`, 200 with the result if it is ready in time (else
    202, never an error). A record the model refuses is a 422 naming the field."""
    await authorize(request, "predict")
    endpoint = request.path_params["endpoint"]
    wait = _wait(request.query_params.get("wait"))
    body_bytes = await _body(request)
    body = _envelope(body_bytes)
    request_id = body.get("request_id")
    key = idempotency.key_of(request)
    if key is not None:
        claim = await idempotency.claim(request, key, body_bytes, request_id or str(uuid.uuid4()))
        request_id = claim.request_id
    outcome = await predictions(request).predict(
        endpoint=endpoint,
        record=body.get("record"),
        status=body.get("status"),
        version=body.get("version"),
        assignment_key=body.get("assignment_key"),
        request_id=request_id,
        wait=wait,
    )
    status, document = settle(outcome)
    return json_response(document, status, {"Location": link(outcome.request_id)})


@router.get(
    "/v1/predictions/{request_id}",
    dependencies=SECURED,
    summary="Read a result by request id",
    responses={200: {"model": PredictionResult}},
)
async def get_prediction(
    request: Request,
    request_id: str = Path(min_length=1, max_length=MAX_REQUEST_ID_LENGTH),
    wait: float | None = WAIT,
) -> Response:
    """A single record's or a batch record's result: OK or ERROR once recorded, QUEUED
    or RUNNING before (`?wait=SECONDS` waits for it to be final). 404 for an id never
    issued."""
    result = await predictions(request).result(request_id, wait=wait_seconds(wait))
    return json_response({**result, "links": {"self": link(request_id)}})


async def _body(request: Request) -> bytes:
    kind = media_type(request)
    if kind != JSON and not kind.endswith("+json"):
        raise unsupported(kind, (JSON,))
    return await read_body(request)


def _envelope(raw: bytes) -> dict[str, Any]:
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise Problem(422, "invalid_request", "the body must be a JSON object", field="body")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise Problem(
            422,
            "invalid_request",
            f"unknown field {unknown[0][:60]!r}; a prediction takes {', '.join(FIELDS)} "
            "(the features go under record)",
            field=unknown[0][:60],
        )
    if "record" not in body:
        raise Problem(422, "invalid_request", "record is required", field="record")
    for name in FIELDS[1:]:
        if body.get(name) is not None and not isinstance(body[name], str):
            raise Problem(422, "invalid_request", f"{name} must be a string", field=name)
    return body


def _wait(text: str | None) -> float:
    if text is None:
        return 0.0
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise Problem(
            422, "invalid_request", "wait must be a number of seconds from 0 to 3600", field="wait"
        )
    return wait_seconds(seconds)
