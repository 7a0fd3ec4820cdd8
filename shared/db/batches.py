"""Batches: the row a producer writes before sending, progress in one query per poll,
and results in input order. All from the database, so they outlive the result backend."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from shared.contracts import batch_request_id
from shared.db.dialect import insert
from shared.db.external_ids import iter_external_ids
from shared.db.models import Batch, MLAlgorithm, MLRequest, as_utc, utcnow


@dataclass(frozen=True)
class BatchProgress:
    batch_id: str
    endpoint: str
    total: int | None  # None while the producer is still sending
    done: int
    failed: int
    created_at: datetime
    submitted_at: datetime | None
    last_row_at: datetime | None  # when rows were last written (Batch.written_at)

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total

    @property
    def rate(self) -> float | None:
        """Records written per second, from the batch's creation to its latest row."""
        if not self.done or self.last_row_at is None:
            return None
        seconds = (as_utc(self.last_row_at) - as_utc(self.created_at)).total_seconds()
        return self.done / seconds if seconds > 0 else None

    def as_dict(self) -> dict[str, Any]:
        state = "submitting" if self.total is None else "done" if self.finished else "running"
        rate = self.rate
        return {
            "batch_id": self.batch_id,
            "endpoint": self.endpoint,
            "state": state,
            "total": self.total,
            "done": self.done,
            "ok": self.done - self.failed,
            "failed": self.failed,
            "rate_per_s": round(rate, 1) if rate else None,
            "created_at": self.created_at.isoformat(),
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else None,
        }


def create_batch(
    session: Session,
    *,
    batch_id: str,
    endpoint: str,
    status: str | None,
    version: str | None,
    source: str | None,
) -> None:
    """Record a batch before its records are sent; submitting it again is allowed."""
    session.execute(
        insert(session, Batch)
        .values(
            id=batch_id,
            endpoint=endpoint,
            algorithm_status=status,
            algorithm_version=version,
            source=source,
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )


def batch_created_at(batch_id: str, *, endpoint: str) -> datetime:
    """The batch's created_at, which its rows carry too (their partition key).

    A batch whose producer wrote no batch row (a raw producer sending chunks itself)
    gets one now, by the first chunk to come: every chunk and every redelivery then
    reads the same time, so their rows conflict as they should.
    """
    from shared.db.engine import autocommit_connection

    with autocommit_connection() as connection:
        query = select(Batch.created_at).where(Batch.id == batch_id)
        found = connection.execute(query).scalar_one_or_none()
        if found is None:
            connection.execute(
                insert(connection, Batch)
                .values(id=batch_id, endpoint=endpoint, created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["id"])
            )
            found = connection.execute(query).scalar_one()
    return as_utc(found)


def mark_written(session: Session, *, batch_id: str) -> None:
    """Note that a chunk's rows are written now (what the batch's rate is measured to)."""
    session.execute(update(Batch).where(Batch.id == batch_id).values(written_at=utcnow()))


def finish_submission(session: Session, *, batch_id: str, total: int) -> None:
    session.execute(
        update(Batch).where(Batch.id == batch_id).values(total=total, submitted_at=utcnow())
    )


def holds_position(session: Session, *, batch_id: str, position: int) -> bool:
    """Whether a batch exists and has (or, still being sent, may have) this position;
    reads one row, however large the batch."""
    found = session.execute(select(Batch.total).where(Batch.id == batch_id)).one_or_none()
    return found is not None and (found[0] is None or position < found[0])


def batch_progress(session: Session, *, batch_id: str) -> BatchProgress | None:
    """Counts of a batch in one query."""
    row = session.execute(
        select(
            Batch.id,
            Batch.endpoint,
            Batch.total,
            func.count(MLRequest.id),
            func.count(MLRequest.id).filter(MLRequest.status == "ERROR"),
            Batch.created_at,
            Batch.submitted_at,
            Batch.written_at,
        )
        # A batch's rows all carry its created_at: one partition is read.
        .outerjoin(
            MLRequest,
            and_(MLRequest.batch_id == Batch.id, MLRequest.created_at == Batch.created_at),
        )
        .where(Batch.id == batch_id)
        .group_by(Batch.id)
    ).one_or_none()
    return BatchProgress(*row) if row else None


RESULT_COLUMNS = (
    "position",
    "external_id",
    "request_id",
    "status",
    "label",
    "probability",
    "algorithm",
    "version",
    "error",
)


def _created_at_of(batch_id: str) -> Any:
    return select(Batch.created_at).where(Batch.id == batch_id).scalar_subquery()


def iter_batch_results(session: Session, *, batch_id: str, total: int) -> Iterator[tuple[Any, ...]]:
    """One tuple per input record (RESULT_COLUMNS), in input order; records not written
    yet say QUEUED; ``external_id`` is the caller's id of the record (``--id-column``)."""
    rows = session.execute(
        select(
            MLRequest.batch_position,
            MLRequest.id,
            MLRequest.status,
            MLRequest.label,
            MLRequest.probability,
            MLAlgorithm.name,
            MLAlgorithm.version,
            MLRequest.error_message,
        )
        .outerjoin(MLAlgorithm, MLAlgorithm.id == MLRequest.algorithm_id)
        .where(MLRequest.batch_id == batch_id)
        # A batch's rows all carry its created_at: one partition is read.
        .where(MLRequest.created_at == _created_at_of(batch_id))
        .order_by(MLRequest.batch_position)
        .execution_options(yield_per=5000)
    )
    # Both streams are in position order: the ids are merged in as positions go by.
    ids = iter_external_ids(session, batch_id=batch_id)
    with closing(ids), rows:
        yield from _merged(batch_id, total, rows, ids)


def _merged(
    batch_id: str, total: int, rows: Iterable[Any], ids: Iterator[tuple[int, str]]
) -> Iterator[tuple[Any, ...]]:
    next_id = next(ids, None)

    def external_id(position: int) -> str | None:
        nonlocal next_id
        while next_id is not None and next_id[0] < position:
            next_id = next(ids, None)
        return next_id[1] if next_id is not None and next_id[0] == position else None

    def queued(position: int) -> tuple[Any, ...]:
        request_id = batch_request_id(batch_id, position)
        return (position, external_id(position), request_id, "QUEUED", *[None] * 5)

    expected = 0
    for position, *rest in rows:
        position = position or 0  # never null for the rows of a batch
        for missing in range(expected, position):
            yield queued(missing)
        yield (position, external_id(position), *rest)
        expected = position + 1
    for missing in range(expected, total):
        yield queued(missing)
