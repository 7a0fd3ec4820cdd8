"""Serving one chunk of a batch: one selection, one validation pass, one predict_proba,
one bulk write. A bad record gets its own error row; the rest of its chunk is scored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from shared.contracts import PredictBatchResult, PredictResult, batch_request_id
from shared.db.engine import session_scope
from shared.db.models import utcnow
from shared.db.requests import copy_requests, existing_positions
from shared.errors import MlqError
from shared.registry import AlgorithmInfo
from shared.registry_cache import RegistryCache
from workers.model_store import ModelStore
from workers.routing import Route, route_many
from workers.serving import error_result, ok_results, request_row

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
    """Score a chunk and write a row for each of its records that has none yet."""
    started = time.perf_counter()
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
        # Records routed to the same algorithm (an A/B arm, or all of them) score together.
        groups: dict[Route | None, list[int]] = {}
        for i, chosen in zip(todo, routes, strict=True):
            groups.setdefault(chosen, []).append(i)
        by_position: dict[int, PredictResult] = {}
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
