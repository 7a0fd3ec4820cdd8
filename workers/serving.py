"""Serving single predictions: one record (``mlq.predict``), or a group of single records
each with its own request id (``mlq.predict_many``, what the HTTP API sends when many
clients call at once). Every record gets its own row and its own result.

Plain functions: the Celery tasks decode their message and call these; tests call them
with no broker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import SQLAlchemyError

from shared.contracts import PredictResult
from shared.db.engine import autocommit_connection, session_scope
from shared.db.models import as_utc, utcnow
from shared.db.requests import copied_ids, ensure_partitions, get_responses, inserted_ids
from shared.errors import MlqError
from shared.registry_cache import RegistryCache
from workers.attempts import count as count_attempts
from workers.model_store import ModelStore
from workers.request_checks import batch_shaped, unkeyable
from workers.results import InternalError, error_result, request_row
from workers.scoring import Item, score_items
from workers.shadow import ShadowAnswer, shadow_rows, write_shadow_answers

log = logging.getLogger(__name__)

# A producer's clock ahead of the worker's by more than this is not believed.
CLOCK_SKEW = timedelta(hours=1)


def accepted_time(accepted_at: object, now: datetime) -> datetime:
    """A single record's created_at: when its producer accepted it (``accepted_at`` of
    the message, ISO 8601), so that a redelivery writes the same key; ``now`` for a
    message without one (sent by an older producer) or with a time in the future."""
    if isinstance(accepted_at, str):
        try:
            moment = as_utc(datetime.fromisoformat(accepted_at))
        except ValueError:
            return now
        if moment <= now + CLOCK_SKEW:
            return moment
    return now


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
    failure: MlqError | None = None,
    accepted_at: object = None,
) -> PredictResult:
    """Predict one record and write its MLRequest row; a bad record gets an error row.

    Database errors propagate so the task is retried; a redelivered request whose row
    exists already returns the stored result and writes nothing. A request no row can
    hold (see ``unkeyable``) is answered with an error and logged, without a row.
    """
    return serve_group(
        store,
        registry,
        items=[
            {
                "request_id": request_id,
                "record": record,
                "assignment_key": assignment_key,
                "accepted_at": accepted_at,
            }
        ],
        endpoint=endpoint,
        status=status,
        version=version,
        failure=failure,
    )[0]


def serve_group(
    store: ModelStore,
    registry: RegistryCache,
    *,
    items: Sequence[Any],
    endpoint: str,
    status: str | None = None,
    version: str | None = None,
    failure: MlqError | None = None,
) -> list[PredictResult]:
    """Predict single records together and write one row each, in one statement
    (``failure``: give every record that error instead, see ``score_items``)."""
    started = time.perf_counter()
    answers: dict[int, PredictResult] = {}
    keyed: list[tuple[int, Item]] = []
    accepted: dict[str, object] = {}
    for i, raw in enumerate(items):
        request_id = raw.get("request_id") if isinstance(raw, dict) else None
        refused = unkeyable(request_id, endpoint)
        if refused is None and isinstance(request_id, str):
            refused = batch_shaped(request_id)
        if refused is not None:
            log.warning("request %.80r: refused: %s", request_id, refused.message)
            answers[i] = error_result(str(request_id)[:128], refused)
            continue
        assert isinstance(raw, dict) and isinstance(request_id, str)
        key = raw.get("assignment_key") or request_id
        keyed.append((i, Item(request_id, raw.get("record"), str(key))))
        accepted[request_id] = raw.get("accepted_at")
    if not keyed:
        return [answers[i] for i in range(len(items))]
    shadows: list[ShadowAnswer] = []
    try:
        scored = score_items(
            store,
            registry,
            [item for _, item in keyed],
            endpoint=endpoint,
            status=status,
            version=version,
            failure=failure,
            shadows=shadows,
        )
    except (SQLAlchemyError, SoftTimeLimitExceeded):
        raise
    except Exception:  # a bug of ours must not lose the records: each gets an error row
        log.exception("requests %s: unexpected failure", [item.request_id for _, item in keyed])
        scored = [(error_result(item.request_id, InternalError()), None) for _, item in keyed]
    # A row's latency is its own model's: a shadow challenger's scoring is left out.
    shadow_ms = sum(answer.latency_ms for answer in shadows)
    elapsed_ms = (time.perf_counter() - started) * 1000 - shadow_ms
    per_record_ms = elapsed_ms / max(len(keyed), 1)
    rows = [
        request_row(
            result, endpoint=endpoint, record=item.record, latency_ms=per_record_ms, route=route
        )
        for (_, item), (result, route) in zip(keyed, scored, strict=True)
    ]
    now = utcnow()
    for row in rows:  # one time for the row and its shadow answers: its partition key
        row["created_at"] = accepted_time(accepted.get(row["id"]), now)
    # The rows are the only write of a prediction (a shadow test's challenger answers
    # follow in one more, never failing the rows).
    count_attempts("scored", (item.request_id for _, item in keyed))
    written = _write(rows)
    count_attempts("written", written)
    redelivered = [row["id"] for row in rows if row["id"] not in written]
    if redelivered:
        with autocommit_connection() as connection:
            stored = get_responses(connection, request_ids=redelivered)
    else:
        stored = {}
    if shadows:
        when = {row["id"]: row["created_at"] for row in rows if row["id"] in written}
        write_shadow_answers(shadow_rows(shadows, created_at=when))
    for (i, item), (result, _) in zip(keyed, scored, strict=True):
        if item.request_id in stored:
            log.info(
                "request %s: redelivered, row exists, returning the stored result", item.request_id
            )
            answers[i] = stored[item.request_id]  # type: ignore[assignment]
            continue
        answers[i] = result
        answer = result["error"] or (
            result["label"] if result["value"] is None else result["value"]
        )
        log.info(
            "request %s: %s %s on %s in %.1f ms",
            item.request_id,
            result["status"],
            answer,
            endpoint,
            per_record_ms,
        )
    return [answers[i] for i in range(len(items))]


def _write(rows: list[dict[str, Any]]) -> set[str]:
    """Write the rows; the ids written now (a redelivered request's row exists already).

    One record: one INSERT committed by itself, a single round trip. A group: one COPY,
    whose statement is the same for every group size (an INSERT of many rows is a new
    statement for each size, which psycopg parses again every time: measured, the
    largest cost of a group after the model).
    """
    if not rows:
        return set()
    ensure_partitions(rows)
    if len(rows) == 1:
        with autocommit_connection() as connection:
            return inserted_ids(connection, rows=rows)
    full = [{**row, "batch_id": None, "batch_position": None} for row in rows]
    with session_scope() as session:
        return copied_ids(session, rows=full)
