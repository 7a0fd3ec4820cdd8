"""The Celery tasks: thin wrappers that decode a message and call plain functions."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import OperationalError

from shared.celery_app import app
from shared.contracts import (
    TASK_ECHO,
    TASK_PREDICT,
    TASK_PREDICT_BATCH,
    PredictBatchResult,
    PredictResult,
)
from shared.errors import TransientError
from workers.batch_serving import serve_chunk
from workers.runtime import REGISTRY, STORE
from workers.serving import serve_prediction

# A database or broker outage is retried with exponential backoff (1 s, 2 s, 4 s, ...
# capped at 60 s); rows are keyed by request id, so a retry never writes twice.
RETRY_POLICY: dict[str, Any] = {
    "autoretry_for": (TransientError, OperationalError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 10,
}


@app.task(name=TASK_PREDICT, bind=True, **RETRY_POLICY)
def predict(
    self: Any,
    record: object,
    endpoint: str,
    request_id: str | None = None,
    status: str | None = None,
    version: str | None = None,
) -> PredictResult:
    return serve_prediction(
        STORE,
        REGISTRY,
        request_id=request_id or self.request.id,
        record=record,
        endpoint=endpoint,
        status=status,
        version=version,
    )


@app.task(name=TASK_PREDICT_BATCH, bind=True, **RETRY_POLICY)
def predict_batch(
    self: Any,
    batch_id: str,
    endpoint: str,
    start: int,
    records: list[Any],
    status: str | None = None,
    version: str | None = None,
) -> PredictBatchResult:
    return serve_chunk(
        STORE,
        REGISTRY,
        batch_id=batch_id,
        endpoint=endpoint,
        start=start,
        records=records,
        status=status,
        version=version,
    )


@app.task(name=TASK_ECHO)
def echo(value: Any = None) -> Any:
    """Returns its argument: the baseline for round-trip benchmarks and health checks."""
    return value
