"""The Celery tasks: thin wrappers that decode a message and call plain functions."""

from __future__ import annotations

import logging
from typing import Any

from cachetools import TTLCache, cached
from celery.result import AsyncResult
from sqlalchemy.exc import OperationalError

from shared.ab.evaluation import evaluate_running
from shared.celery_app import app
from shared.contracts import (
    TASK_AB_EVALUATE,
    TASK_ECHO,
    TASK_FEEDBACK,
    TASK_PARTITIONS,
    TASK_PREDICT,
    TASK_PREDICT_BATCH,
    TASK_PREDICT_MANY,
    TASK_RECONCILE,
    FeedbackResult,
    PredictBatchResult,
    PredictResult,
    parse_batch_request_id,
)
from shared.db import partitions
from shared.db.batches import holds_position
from shared.db.engine import session_scope
from shared.db.ledger import accepted_state
from shared.errors import TransientError
from shared.registry import labels_by_endpoint
from shared.settings import get_settings
from workers.batch_serving import serve_chunk
from workers.deliveries import BoundedDeliveryTask
from workers.feedback import serve_feedback
from workers.item_results import store_item_results
from workers.reconciler import reconcile
from workers.runtime import REGISTRY, STORE
from workers.serving import serve_group, serve_prediction

log = logging.getLogger(__name__)

# A database outage is retried with exponential backoff (1 s, 2 s, 4 s, ... capped at
# 60 s) for as long as it lasts: giving up would drop the record with no row. Rows are
# keyed by request id, so a retry never writes twice.
RETRY_POLICY: dict[str, Any] = {
    "autoretry_for": (TransientError, OperationalError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": None,
}


# The pool keeps a timer for every task's hard time limit until the limit would have
# passed, cancelled or not: about 0.5 KiB each in the worker's main process, so the
# main process holds rate x limit of them (measured: 1.5 MiB a minute of steady growth at
# 50 predictions/s with 600 s). A single record takes milliseconds; a minute is plenty.
SINGLE_RECORD_TIME_LIMIT_S = min(60, get_settings().task_time_limit_s)
# Past its soft limit a task is retried, then given up (workers/deliveries.py); past the
# hard limit its process is killed and the reconciler sends the work again.
SINGLE_RECORD_SOFT_LIMIT_S = min(get_settings().soft_time_limit_s, SINGLE_RECORD_TIME_LIMIT_S * 0.9)


@app.task(
    name=TASK_PREDICT,
    bind=True,
    base=BoundedDeliveryTask,
    time_limit=SINGLE_RECORD_TIME_LIMIT_S,
    soft_time_limit=SINGLE_RECORD_SOFT_LIMIT_S,
    **RETRY_POLICY,
)
def predict(
    self: Any,
    record: object,
    endpoint: str,
    request_id: str | None = None,
    status: str | None = None,
    version: str | None = None,
    assignment_key: str | None = None,
    accepted_at: str | None = None,
) -> PredictResult:
    # A raw producer may send anything here: serve_prediction answers an id no row can
    # be keyed by (not a string, too long) with an error; "" and null mean "not given".
    return serve_prediction(
        STORE,
        REGISTRY,
        request_id=self.request.id if request_id is None or request_id == "" else request_id,
        record=record,
        endpoint=endpoint,
        status=status,
        version=version,
        assignment_key=assignment_key,
        accepted_at=accepted_at,
    )


# Each record's result is stored under its own request id (what producers wait on), so
# the group's list is not stored again under the message's id.
@app.task(
    name=TASK_PREDICT_MANY,
    bind=True,
    base=BoundedDeliveryTask,
    time_limit=SINGLE_RECORD_TIME_LIMIT_S,
    soft_time_limit=SINGLE_RECORD_SOFT_LIMIT_S,
    ignore_result=True,
    **RETRY_POLICY,
)
def predict_many(
    self: Any,
    items: list[Any],
    endpoint: str,
    status: str | None = None,
    version: str | None = None,
) -> list[PredictResult]:
    results = serve_group(
        STORE, REGISTRY, items=items, endpoint=endpoint, status=status, version=version
    )
    try:
        store_item_results(app.backend, items, results)
    except Exception:
        # The rows are written and the group's result holds every answer; only reading
        # them by request id now waits for the rows.
        log.warning("predict_many: results not stored by request id", exc_info=True)
    return results


@app.task(name=TASK_PREDICT_BATCH, bind=True, base=BoundedDeliveryTask, **RETRY_POLICY)
def predict_batch(
    self: Any,
    batch_id: str,
    endpoint: str,
    start: int,
    records: list[Any],
    status: str | None = None,
    version: str | None = None,
    algorithm_id: int | None = None,
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
        algorithm_id=algorithm_id,
    )


def _was_issued(request_id: str) -> bool:
    """Whether a request id without a row was ever sent: a record of a known batch, an id
    an mlq producer accepted (the ledger), or one the result backend knows."""
    parsed = parse_batch_request_id(request_id)
    with session_scope() as session:
        if parsed is not None and holds_position(session, batch_id=parsed[0], position=parsed[1]):
            return True
        if accepted_state(session, request_id=request_id) is not None:
            return True
    return bool(AsyncResult(request_id, app=app).state != "PENDING")


@cached(TTLCache(maxsize=1, ttl=get_settings().registry_cache_s or 0.001))
def _labels_by_endpoint() -> dict[str, frozenset[str] | None]:
    with session_scope() as session:
        return labels_by_endpoint(session)


@app.task(name=TASK_FEEDBACK, bind=True, **RETRY_POLICY)
def feedback(self: Any, items: list[Any]) -> FeedbackResult:
    return serve_feedback(
        items,
        classes=_labels_by_endpoint(),
        was_issued=_was_issued,
        message_id=str(self.request.id),
    )


@app.task(name=TASK_RECONCILE, **RETRY_POLICY)
def reconcile_accepted_work() -> dict[str, int]:
    """Run by Celery beat: send again accepted work that a broker or worker lost."""
    return reconcile(app)


@app.task(name=TASK_AB_EVALUATE, **RETRY_POLICY)
def evaluate_ab_tests() -> list[dict[str, Any]]:
    """Run by Celery beat: evaluate every running A/B test, end those that are decided
    (the same code `mlq ab stop` runs)."""
    return evaluate_running(ended_by="beat")


@app.task(name=TASK_PARTITIONS, **RETRY_POLICY)
def make_partitions() -> list[str]:
    """Run by Celery beat every hour: the request log's partitions from yesterday to a
    week ahead; the days made."""
    return [str(day) for day in partitions.ensure_ahead()]


@app.task(name=TASK_ECHO)
def echo(value: Any = None) -> Any:
    """Returns its argument: the baseline for round-trip benchmarks and health checks."""
    return value
