"""What a prediction answers (the task's result, also stored as the row's response) and
the MLRequest row that records it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shared.contracts import STATUS_ERROR, STATUS_OK, PredictResult
from shared.errors import MlqError, RecordTooLargeError
from shared.json_safe import json_safe
from shared.registry import AlgorithmInfo
from workers.predictors import Prediction
from workers.routing import Route


class InternalError(MlqError):
    """The worker failed unexpectedly on this record; the error was logged."""

    code = "internal"


def scored_results(
    request_ids: Sequence[str], algorithm: AlgorithmInfo, prediction: Prediction
) -> list[PredictResult]:
    """One result per row of a prediction, rounded once for the whole batch."""
    ref = algorithm.ref()
    if prediction.values is not None:
        values: list[float] = np.round(prediction.values, 6).tolist()
        return [_ok(rid, ref, value=v) for rid, v in zip(request_ids, values, strict=True)]
    assert prediction.labels is not None
    if prediction.probabilities is None:
        return [
            _ok(rid, ref, label=lbl)
            for rid, lbl in zip(request_ids, prediction.labels, strict=True)
        ]
    # ONNX Runtime gives float32: widen first, or 0.94 prints as 0.9399999976158142.
    rows: list[list[float]] = np.round(prediction.probabilities, 6).tolist()
    classes = algorithm.classes
    best = prediction.probabilities.argmax(axis=1).tolist()
    # The dict of _ok written out: this runs for every record of a batch.
    return [
        {
            "request_id": rid,
            "status": STATUS_OK,
            "label": label,
            "probability": row[b],
            "probabilities": dict(zip(classes, row, strict=True)),
            "value": None,
            "algorithm": ref,  # type: ignore[typeddict-item]
            "error": None,
        }
        for rid, label, row, b in zip(request_ids, prediction.labels, rows, best, strict=True)
    ]


def _ok(
    request_id: str,
    algorithm: dict[str, object],
    *,
    label: str | None = None,
    probability: float | None = None,
    probabilities: dict[str, float] | None = None,
    value: float | None = None,
) -> PredictResult:
    return {
        "request_id": request_id,
        "status": STATUS_OK,
        "label": label,
        "probability": probability,
        "probabilities": probabilities,
        "value": value,
        "algorithm": algorithm,  # type: ignore[typeddict-item]
        "error": None,
    }


def error_result(
    request_id: str, error: MlqError, algorithm: AlgorithmInfo | None = None
) -> PredictResult:
    return {
        "request_id": request_id,
        "status": STATUS_ERROR,
        "label": None,
        "probability": None,
        "probabilities": None,
        "value": None,
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
    """The MLRequest row of a result."""
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
        "value": result["value"],
        "status": result["status"],
        "error_code": error["code"] if error else None,
        "error_message": error["message"] if error else None,
        "latency_ms": round(latency_ms, 3),
        "ab_test_id": route.ab_test_id if route else None,
        "ab_arm": route.ab_arm if route else None,
    }
