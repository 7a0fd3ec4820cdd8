"""Serving one chunk of a batch: one selection, one validation pass, one predict_proba,
one bulk write. A bad record gets its own error row; the rest of its chunk is scored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from shared.contracts import (
    MAX_BATCH_ID_LENGTH,
    MAX_BATCH_POSITION,
    PredictBatchResult,
    PredictResult,
    batch_request_id,
    key_problem,
)
from shared.db.engine import session_scope
from shared.db.models import utcnow
from shared.db.requests import copy_requests, existing_positions
from shared.errors import InvalidRequestError, MlqError
from shared.registry import AlgorithmInfo
from shared.registry_cache import RegistryCache
from workers.model_store import ModelStore
from workers.routing import Route, route_many
from workers.serving import error_result, ok_results, request_row, size_error, unkeyable

log = logging.getLogger(__name__)


def score_chunk(
    store: ModelStore,
    algorithm: AlgorithmInfo | None,
    selection_error: MlqError | None,
    *,
    batch_id: str,
    start: int,
    records: Sequence[Any],
    positions: Sequence[int],
) -> list[PredictResult]:
    """Results for the records at ``positions`` (indexes into ``records``), in order."""
    ids = [batch_request_id(batch_id, start + p) for p in positions]
    if algorithm is None:
        assert selection_error is not None
        return [error_result(request_id, selection_error) for request_id in ids]
    try:
        model = store.get(algorithm.endpoint, algorithm.name, algorithm.version)
    except MlqError as error:
        return [error_result(request_id, error, algorithm) for request_id in ids]
    chunk = model.schema.validate_many([records[p] for p in positions])
    results: dict[int, PredictResult] = {
        i: error_result(ids[i], error, algorithm) for i, error in chunk.errors.items()
    }
    if chunk.positions:
        probabilities = model.predict_proba(model.schema.transform(chunk.frame))
        scored = ok_results(
            [ids[i] for i in chunk.positions], algorithm, model.classes, probabilities
        )
        results.update(zip(chunk.positions, scored, strict=True))
    return [results[i] for i in range(len(positions))]


def chunk_problem(
    batch_id: object, endpoint: object, start: object, records: object
) -> InvalidRequestError | None:
    """The error of a chunk whose rows could not be keyed or filed, or None.

    Only a producer that builds messages itself can send one; it gets no rows (no key
    for them exists) and the task fails with this error, logged.
    """
    problem = key_problem(batch_id, MAX_BATCH_ID_LENGTH)
    if problem:
        return InvalidRequestError("batch_id", f"{problem}; no row can be keyed by it")
    refused = unkeyable("-", endpoint)
    if refused is not None:
        return refused
    if not isinstance(records, list):
        return InvalidRequestError("records", f"must be an array, got {type(records).__name__}")
    if type(start) is not int or not 0 <= start <= MAX_BATCH_POSITION - len(records):
        return InvalidRequestError(
            "start",
            f"must be a whole number from 0 to {MAX_BATCH_POSITION} less the chunk's "
            f"records, got {start!r:.40}",
        )
    return None


def serve_chunk(
    store: ModelStore,
    registry: RegistryCache,
    *,
    batch_id: str,
    endpoint: str,
    start: int,
    records: Sequence[Any],
    status: str | None = None,
    version: str | None = None,
) -> PredictBatchResult:
    """Score a chunk and write a row for each of its records that has none yet.

    A record bigger than MLQ_MAX_RECORD_BYTES gets an error row and is not scored.
    """
    started = time.perf_counter()
    refused = chunk_problem(batch_id, endpoint, start, records)
    if refused is not None:
        log.warning("batch %.80r chunk %.20r: refused: %s", batch_id, start, refused.message)
        raise refused
    with session_scope() as session:
        done = existing_positions(
            session, batch_id=batch_id, start=start, stop=start + len(records)
        )
        todo = [i for i in range(len(records)) if start + i not in done]
        keys = [batch_request_id(batch_id, start + i) for i in todo]
        routes: list[Route | None]
        try:
            routes = list(
                route_many(registry, endpoint=endpoint, keys=keys, status=status, version=version)
            )
        except MlqError as error:
            routes = [None] * len(todo)
            selection_error: MlqError | None = error
        else:
            selection_error = None
        # Too large or too deep: not scored, and under no A/B arm, as a single record.
        too_large = {i: e for i in todo if (e := size_error(records[i])) is not None}
        if too_large:
            routes = [None if i in too_large else r for i, r in zip(todo, routes, strict=True)]
        # Records routed to the same algorithm (an A/B arm, or all of them) score together.
        groups: dict[Route | None, list[int]] = {}
        for i, chosen in zip(todo, routes, strict=True):
            if i not in too_large:
                groups.setdefault(chosen, []).append(i)
        by_position: dict[int, PredictResult] = {
            i: error_result(batch_request_id(batch_id, start + i), error)
            for i, error in too_large.items()
        }
        for chosen, positions in groups.items():
            scored = score_chunk(
                store,
                chosen.algorithm if chosen else None,
                selection_error,
                batch_id=batch_id,
                start=start,
                records=records,
                positions=positions,
            )
            by_position.update(zip(positions, scored, strict=True))
        results = [by_position[i] for i in todo]
        per_record_ms = (time.perf_counter() - started) * 1000 / max(len(todo), 1)
        now = utcnow()
        rows = []
        for i, result, chosen in zip(todo, results, routes, strict=True):
            row = request_row(
                result,
                endpoint=endpoint,
                record=records[i],
                latency_ms=per_record_ms,
                route=chosen,
            )
            row.update(batch_id=batch_id, batch_position=start + i, created_at=now)
            rows.append(row)
        written = copy_requests(session, rows=rows)
    errors = sum(1 for r in results if r["status"] != "OK")
    log.info(
        "batch %s chunk %d+%d: %d scored (%d errors), %d already written, %.0f ms",
        batch_id,
        start,
        len(records),
        len(todo),
        errors,
        len(done),
        (time.perf_counter() - started) * 1000,
    )
    return {
        "batch_id": batch_id,
        "start": start,
        "count": len(records),
        "ok": len(todo) - errors,
        "errors": errors,
        "written": written,
    }
