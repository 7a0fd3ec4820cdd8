"""Serving one chunk of a batch: one selection, one validation pass and one prediction
per model, one bulk write. A bad record gets its own error row; the rest of its chunk
is scored. A position that has a row already is never scored again, so chunks sent
twice, or cut differently on a resubmission, overlap safely.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.contracts import PredictBatchResult, PredictResult, batch_request_id
from shared.db.batches import batch_created_at, mark_written
from shared.db.engine import session_scope
from shared.db.requests import (
    BULK_COLUMNS,
    copied_tuples,
    ensure_partitions,
    existing_positions,
)
from shared.errors import MlqError
from shared.registry_cache import RegistryCache
from workers.attempts import count as count_attempts
from workers.model_store import ModelStore
from workers.request_checks import chunk_problem
from workers.results import request_row
from workers.routing import Route
from workers.scoring import Item, score_items
from workers.shadow import ShadowAnswer, shadow_rows, write_shadow_answers

log = logging.getLogger(__name__)


def chunk_rows(
    *,
    batch_id: str,
    endpoint: str,
    start: int,
    records: Sequence[Any],
    todo: Sequence[int],
    outcomes: Sequence[tuple[PredictResult, Route | None]],
    latency_ms: float,
    created_at: datetime,
) -> list[tuple[Any, ...]]:
    """The rows of a chunk's records at ``todo`` (indexes into ``records``), as tuples in
    BULK_COLUMNS order, all with their batch's ``created_at`` (their partition key, the
    same on every delivery). A scored record's row is built straight from its result; a
    refused one's goes through ``request_row`` (which makes its values storable)."""
    latency = round(latency_ms, 3)
    rows = []
    for i, (result, chosen) in zip(todo, outcomes, strict=True):
        position = start + i
        if result["error"] is None:
            algorithm = result["algorithm"]
            rows.append(
                (
                    result["request_id"],
                    endpoint,
                    algorithm["id"] if algorithm else None,
                    records[i],
                    result,
                    result["label"],
                    result["probability"],
                    result["value"],
                    result["status"],
                    None,
                    None,
                    latency,
                    batch_id,
                    position,
                    created_at,
                    chosen.ab_test_id if chosen else None,
                    chosen.ab_arm if chosen else None,
                )
            )
            continue
        row = request_row(
            result, endpoint=endpoint, record=records[i], latency_ms=latency_ms, route=chosen
        )
        row.update(batch_id=batch_id, batch_position=position, created_at=created_at)
        rows.append(tuple(row[column] for column in BULK_COLUMNS))
    return rows


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
    failure: MlqError | None = None,
    algorithm_id: int | None = None,
) -> PredictBatchResult:
    """Score a chunk and write a row for each of its records that has none yet
    (``failure``: give every such record that error instead, see ``score_items``)."""
    started = time.perf_counter()
    refused = chunk_problem(batch_id, endpoint, start, records)
    if refused is not None:
        log.warning("batch %.80r chunk %.20r: refused: %s", batch_id, start, refused.message)
        raise refused
    created_at = batch_created_at(batch_id, endpoint=endpoint)
    ensure_partitions([{"created_at": created_at}])  # before the transaction: see there
    with session_scope() as session:
        done = existing_positions(
            session,
            batch_id=batch_id,
            start=start,
            stop=start + len(records),
            created_at=created_at,
        )
        todo = [i for i in range(len(records)) if start + i not in done]
        # batch_request_id(batch_id, position), inlined: this runs for every record.
        prefix = batch_request_id(batch_id, 0)[:-1]
        items = [
            Item(request_id, records[i], request_id)
            for i, request_id in zip(todo, [prefix + str(start + i) for i in todo], strict=True)
        ]
        shadows: list[ShadowAnswer] = []
        outcomes = score_items(
            store,
            registry,
            items,
            endpoint=endpoint,
            status=status,
            version=version,
            failure=failure,
            shadows=shadows,
            algorithm_id=algorithm_id,
        )
        # A row's latency is its own model's: a shadow challenger's scoring is left out.
        shadow_ms = sum(answer.latency_ms for answer in shadows)
        rows = chunk_rows(
            batch_id=batch_id,
            endpoint=endpoint,
            start=start,
            records=records,
            todo=todo,
            outcomes=outcomes,
            latency_ms=((time.perf_counter() - started) * 1000 - shadow_ms) / max(len(todo), 1),
            created_at=created_at,
        )
        count_attempts("scored", (item.request_id for item in items))
        written_ids = copied_tuples(session, rows)
        if written_ids:
            mark_written(session, batch_id=batch_id)
    count_attempts("written", written_ids)
    written = len(written_ids)
    # After the chunk's rows are committed, so that they never depend on these.
    if shadows:
        write_shadow_answers(shadow_rows(shadows, created_at={row[0]: created_at for row in rows}))
    errors = sum(1 for result, _ in outcomes if result["status"] != "OK")
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
