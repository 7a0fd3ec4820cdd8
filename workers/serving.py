"""Serving one prediction: select, validate, preprocess, predict, record.

Plain functions: the Celery task decodes its message and calls ``serve_prediction``;
tests call the same functions with no broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy.exc import SQLAlchemyError

from shared.contracts import (
    MAX_ENDPOINT_LENGTH,
    MAX_REQUEST_ID_LENGTH,
    STATUS_ERROR,
    STATUS_OK,
    PredictResult,
    key_problem,
    record_limit_error,
)
from shared.db.engine import autocommit_connection
from shared.db.requests import get_response, record_requests
from shared.errors import InvalidRecordError, InvalidRequestError, MlqError, RecordTooLargeError
from shared.json_safe import json_safe
from shared.registry import AlgorithmInfo
from shared.registry_cache import RegistryCache
from shared.settings import get_settings
from workers.model_store import LoadedModel, ModelStore
from workers.routing import Route, route

log = logging.getLogger(__name__)


def ok_results(
    request_ids: Sequence[str],
    algorithm: AlgorithmInfo,
    classes: tuple[str, ...],
    probabilities: np.ndarray,
) -> list[PredictResult]:
    """Results for rows of class probabilities, rounded once for the whole matrix."""
    # ONNX Runtime gives float32: widen first, or 0.94 prints as 0.9399999976158142.
    rounded: list[list[float]] = np.round(probabilities.astype(np.float64), 6).tolist()
    best = probabilities.argmax(axis=1).tolist()
    ref = algorithm.ref()
    return [
        {
            "request_id": request_id,
            "status": STATUS_OK,
            "label": classes[b],
            "probability": row[b],
            "probabilities": dict(zip(classes, row, strict=True)),
            "algorithm": ref,  # type: ignore[typeddict-item]
            "error": None,
        }
        for request_id, row, b in zip(request_ids, rounded, best, strict=True)
    ]


def size_error(record: object) -> InvalidRecordError | None:
    """The error of a record over MLQ_MAX_RECORD_BYTES (or nested too deep), or None.

    Producers check it before sending, but one in another language may send anything.
    A typical record measures in under a microsecond (orjson).
    """
    return record_limit_error(record, get_settings().max_record_bytes)


def unkeyable(request_id: object, endpoint: object) -> InvalidRequestError | None:
    """The error of a request no row can hold: its id cannot key one (not a string, empty,
    too long, a NUL), or its endpoint cannot be stored in one. None for any other."""
    problem = key_problem(request_id, MAX_REQUEST_ID_LENGTH)
    if problem:
        return InvalidRequestError(
            "request_id", f"{problem}; no row can be keyed by it, so none was written"
        )
    problem = key_problem(endpoint, MAX_ENDPOINT_LENGTH, empty_ok=True)
    if problem:
        return InvalidRequestError(
            "endpoint", f"{problem}; no row can be filed under it, so none was written"
        )
    return None


def error_result(
    request_id: str, error: MlqError, algorithm: AlgorithmInfo | None = None
) -> PredictResult:
    return {
        "request_id": request_id,
        "status": STATUS_ERROR,
        "label": None,
        "probability": None,
        "probabilities": None,
        "algorithm": algorithm.ref() if algorithm else None,  # type: ignore[typeddict-item]
        "error": error.as_dict(),  # type: ignore[typeddict-item]
    }


def request_row(
    result: PredictResult,
    *,
    endpoint: str,
    record: object,
    latency_ms: float,
    route: Route | None = None,
) -> dict[str, Any]:
    algorithm = result["algorithm"]
    error = result["error"]
    if error is not None:
        if error["code"] == RecordTooLargeError.code:
            # The limit is there so that such a record is not stored: its row says why.
            record = f"<not stored: {error['message']}>"
        # Only a rejected record (and the error naming its field) can hold values the
        # database refuses: make them storable, so that it still gets its row.
        record, result = json_safe(record), json_safe(result)
        error = result["error"]
    return {
        "id": result["request_id"],
        "endpoint": endpoint,
        "algorithm_id": algorithm["id"] if algorithm else None,
        "input": record,
        "response": result,
        "label": result["label"],
        "probability": result["probability"],
        "status": result["status"],
        "error_code": error["code"] if error else None,
        "error_message": error["message"] if error else None,
        "latency_ms": round(latency_ms, 3),
        "ab_test_id": route.ab_test_id if route else None,
        "ab_arm": route.ab_arm if route else None,
    }


class InternalError(MlqError):
    """The worker failed unexpectedly on this record; the error was logged."""

    code = "internal"


def _predict(
    store: ModelStore, algorithm: AlgorithmInfo, record: object, request_id: str
) -> PredictResult:
    model: LoadedModel = store.get(algorithm.endpoint, algorithm.name, algorithm.version)
    clean = model.schema.validate(record)
    probabilities = model.predict_proba(model.schema.transform_one(clean))
    return ok_results([request_id], algorithm, model.classes, probabilities)[0]


def serve_prediction(
    store: ModelStore,
    registry: RegistryCache,
    *,
    request_id: str,
    record: object,
    endpoint: str,
    status: str | None = None,
    version: str | None = None,
    assignment_key: str | None = None,
) -> PredictResult:
    """Predict one record and write its MLRequest row; a bad record gets an error row.

    Database errors propagate so the task is retried; a redelivered request whose row
    exists already returns the stored result and writes nothing. A request no row can
    hold (see ``unkeyable``) is answered with an error and logged, without a row.
    """
    started = time.perf_counter()
    refused = unkeyable(request_id, endpoint)
    if refused is not None:
        log.warning("request %.80r: refused: %s", request_id, refused.message)
        return error_result(request_id, refused)
    algorithm: AlgorithmInfo | None = None
    chosen: Route | None = None
    try:
        rejected = size_error(record)
        if rejected is not None:
            raise rejected
        chosen = route(
            registry,
            endpoint=endpoint,
            key=assignment_key or request_id,
            status=status,
            version=version,
        )
        algorithm = chosen.algorithm
        result = _predict(store, algorithm, record, request_id)
    except MlqError as error:
        result = error_result(request_id, error, algorithm)
    except SQLAlchemyError:
        raise
    except Exception:
        log.exception("request %s: unexpected failure", request_id)
        result = error_result(request_id, InternalError(), algorithm)
    latency_ms = (time.perf_counter() - started) * 1000
    row = request_row(result, endpoint=endpoint, record=record, latency_ms=latency_ms, route=chosen)
    # One statement, committed by itself: the row is the only write of a prediction.
    with autocommit_connection() as connection:
        if record_requests(connection, rows=[row]) == 0:
            stored = get_response(connection, request_id=request_id)
            log.info("request %s: redelivered, row exists, returning the stored result", request_id)
            return stored  # type: ignore[return-value]
    log.info(
        "request %s: %s %s on %s in %.1f ms",
        request_id,
        result["status"],
        result["label"] or result["error"],
        endpoint,
        latency_ms,
    )
    return result
