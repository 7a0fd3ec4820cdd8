"""The ledger of accepted work: what mlq producers wrote before sending, so that nothing
accepted can silently vanish (workers/reconciler.py sends again what has no row).

Single predictions: one ``accepted_request`` row each. Batches: one ``batch_chunk`` row
per chunk, with its records compressed, written in the same transaction as nothing
else (one statement per chunk). Entries are removed once their rows exist.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from kombu.utils.json import dumps as kombu_dumps
from sqlalchemy import (
    Connection,
    CursorResult,
    and_,
    delete,
    exists,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from shared.db.dialect import insert
from shared.db.models import AcceptedRequest, BatchChunk, MLRequest, WorkerLease, utcnow
from shared.settings import get_settings

Executor = Session | Connection


def ledger_on() -> bool:
    return get_settings().ledger == "on"


def record_accepted(
    executor: Executor,
    *,
    producer: str,
    items: Sequence[tuple[str, str, dict[str, Any] | bytes]],
) -> None:
    """Note single requests (request id, endpoint, task kwargs or ``pack`` of them)
    before they are sent.

    An id accepted before (a client retrying) keeps its first entry.
    """
    if not items:
        return
    now = utcnow()
    executor.execute(
        insert(executor, AcceptedRequest).on_conflict_do_nothing(index_elements=["id"]),
        [
            {
                "id": request_id,
                "endpoint": endpoint,
                "payload": kwargs if isinstance(kwargs, bytes) else pack(kwargs),
                "producer": producer,
                "accepted_at": now,
                "resends": 0,
            }
            for request_id, endpoint, kwargs in items
        ],
    )


def forget_accepted(executor: Executor, *, request_id: str) -> None:
    """The send failed and the caller is told so: not accepted after all."""
    executor.execute(delete(AcceptedRequest).where(AcceptedRequest.id == request_id))


def pack(kwargs: dict[str, Any]) -> bytes:
    """A chunk's task arguments, as stored: zlib level 1 of compact JSON. What orjson
    cannot encode goes through kombu's encoder, as the message itself does (which
    raises TypeError for what JSON cannot hold at all)."""
    try:
        encoded = orjson.dumps(kwargs)
    except TypeError:
        encoded = kombu_dumps(kwargs).encode()
    return zlib.compress(encoded, 1)


def unpack(payload: bytes) -> dict[str, Any]:
    return dict(orjson.loads(zlib.decompress(payload)))


def record_chunk(
    executor: Executor, *, batch_id: str, start: int, count: int, payload: bytes
) -> None:
    """Note a batch chunk before it is sent; a resubmission renews its entry."""
    now = utcnow()
    values = {
        "batch_id": batch_id,
        "start": start,
        "count": count,
        "payload": payload,
        "sent_at": now,
        "resends": 0,
    }
    statement = insert(executor, BatchChunk).values(**values)
    executor.execute(
        statement.on_conflict_do_update(
            index_elements=["batch_id", "start"],
            set_={
                "count": statement.excluded.count,
                "payload": statement.excluded.payload,
                "sent_at": now,
                "overdue_at": None,
                "resent_at": None,
                "resends": 0,
            },
        )
    )


def accepted_state(executor: Executor, *, request_id: str) -> AcceptedRequest | None:
    return executor.execute(
        select(AcceptedRequest).where(AcceptedRequest.id == request_id)
    ).scalar_one_or_none()


# -- the reconciler's side ---------------------------------------------------------------


def forget_finished(session: Session) -> tuple[int, int]:
    """Remove entries whose rows all exist: (single requests, chunks) removed."""
    singles: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        delete(AcceptedRequest).where(exists().where(MLRequest.id == AcceptedRequest.id))
    )
    chunks: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        delete(BatchChunk).where(
            BatchChunk.count
            <= select(func.count(MLRequest.id))
            .where(
                MLRequest.batch_id == BatchChunk.batch_id,
                MLRequest.batch_position >= BatchChunk.start,
                MLRequest.batch_position < BatchChunk.start + BatchChunk.count,
            )
            .scalar_subquery()
        )
    )
    return int(singles.rowcount or 0), int(chunks.rowcount or 0)


def _quiet_since(cutoff: datetime, sent: Any, resent: Any) -> Any:
    return and_(sent < cutoff, or_(resent.is_(None), resent < cutoff))


def unfinished_requests(session: Session, *, cutoff: datetime, limit: int) -> list[AcceptedRequest]:
    """Single requests accepted (or last sent again) before ``cutoff`` with no row."""
    return list(
        session.execute(
            select(AcceptedRequest)
            .where(
                _quiet_since(cutoff, AcceptedRequest.accepted_at, AcceptedRequest.resent_at),
                ~exists().where(MLRequest.id == AcceptedRequest.id),
            )
            .order_by(AcceptedRequest.accepted_at)
            .limit(limit)
        ).scalars()
    )


def unfinished_chunks(session: Session, *, cutoff: datetime, limit: int) -> list[BatchChunk]:
    """Chunks sent (or last sent again) before ``cutoff`` with a position lacking a row."""
    written = (
        select(func.count(MLRequest.id))
        .where(
            MLRequest.batch_id == BatchChunk.batch_id,
            MLRequest.batch_position >= BatchChunk.start,
            MLRequest.batch_position < BatchChunk.start + BatchChunk.count,
        )
        .scalar_subquery()
    )
    return list(
        session.execute(
            select(BatchChunk)
            .where(
                _quiet_since(cutoff, BatchChunk.sent_at, BatchChunk.resent_at),
                written < BatchChunk.count,
            )
            .order_by(BatchChunk.sent_at)
            .limit(limit)
        ).scalars()
    )


def held_task_ids(session: Session, *, task_ids: Sequence[str], since: datetime) -> set[str]:
    """The task ids a live worker renewed its lease of since ``since``."""
    if not task_ids:
        return set()
    return set(
        session.execute(
            select(WorkerLease.task_id).where(
                WorkerLease.task_id.in_(list(task_ids)), WorkerLease.renewed_at >= since
            )
        ).scalars()
    )


def renew_leases(
    connection: Connection, *, worker: str, held: Sequence[tuple[str, str | None]]
) -> None:
    """A worker's main process still holds these messages (task id, delivery tag)."""
    if not held:
        return
    now = utcnow()
    statement = insert(connection, WorkerLease)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["task_id"],
            set_={
                "worker": statement.excluded.worker,
                "delivery_tag": statement.excluded.delivery_tag,
                "renewed_at": now,
            },
        ),
        [
            {"task_id": task_id, "worker": worker, "delivery_tag": tag, "renewed_at": now}
            for task_id, tag in held
        ],
    )


def lease_tags(session: Session, *, task_ids: Sequence[str]) -> dict[str, str]:
    """The last delivery tag a worker held each of these task ids by."""
    if not task_ids:
        return {}
    rows = session.execute(
        select(WorkerLease.task_id, WorkerLease.delivery_tag).where(
            WorkerLease.task_id.in_(list(task_ids)), WorkerLease.delivery_tag.is_not(None)
        )
    )
    return {task_id: str(tag) for task_id, tag in rows}


def forget_leases(session: Session, *, before: datetime) -> None:
    session.execute(delete(WorkerLease).where(WorkerLease.renewed_at < before))


def mark_resent(entry: AcceptedRequest | BatchChunk, now: datetime) -> None:
    entry.overdue_at = None
    entry.resent_at = now
    entry.resends += 1


def reset_chunk_resends(session: Session, *, batch_id: str) -> None:
    """A batch submitted again starts its chunks' resend counts afresh."""
    session.execute(
        update(BatchChunk)
        .where(BatchChunk.batch_id == batch_id)
        .values(resends=0, overdue_at=None, resent_at=None)
    )


def missing_ranges(session: Session, *, batch_id: str, total: int) -> list[tuple[int, int]]:
    """Positions of a batch in [0, total) with no row, as (first, last) ranges; one pass
    over the batch's rows in position order (the (batch_id, batch_position) index)."""
    rows = session.execute(
        text(
            "SELECT batch_position + 1, next_position - 1 FROM ("
            " SELECT batch_position, lead(batch_position, 1, :total)"
            "   OVER (ORDER BY batch_position) AS next_position"
            " FROM ml_request WHERE batch_id = :batch_id"
            ") AS gaps WHERE next_position > batch_position + 1"
        ),
        {"batch_id": batch_id, "total": total},
    ).all()
    ranges = [(int(first), int(last)) for first, last in rows]
    head = session.execute(
        select(func.min(MLRequest.batch_position)).where(MLRequest.batch_id == batch_id)
    ).scalar_one()
    first_written = total if head is None else int(head)
    if first_written > 0:
        ranges.insert(0, (0, min(first_written, total) - 1))
    return ranges


def overdue_since(now: datetime) -> datetime:
    return now - timedelta(seconds=get_settings().reconcile_after_s)


def chunk_spans(session: Session, *, batch_id: str) -> list[tuple[int, int]]:
    """(first, last) positions of the chunks of a batch the ledger still holds."""
    rows = session.execute(
        select(BatchChunk.start, BatchChunk.count)
        .where(BatchChunk.batch_id == batch_id)
        .order_by(BatchChunk.start)
    )
    return [(int(start), int(start + count - 1)) for start, count in rows]


def subtract(
    ranges: Sequence[tuple[int, int]], covered: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """The parts of ``ranges`` that no range of ``covered`` holds (both sorted)."""
    left: list[tuple[int, int]] = []
    for first, last in ranges:
        position = first
        for low, high in covered:
            if high < position or low > last:
                continue
            if low > position:
                left.append((position, low - 1))
            position = max(position, high + 1)
            if position > last:
                break
        if position <= last:
            left.append((position, last))
    return left


def describe_ranges(ranges: Sequence[tuple[int, int]]) -> str:
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)
