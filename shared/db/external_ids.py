"""The caller's own ids of batch records (``--id-column``), written by the producer as
it sends each chunk and read back, in position order, with the batch's results."""

from __future__ import annotations

from collections.abc import Generator, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.dialect import insert
from shared.db.models import BatchExternalId


def record_external_ids(
    session: Session, *, batch_id: str, start: int, ids: Sequence[str | None]
) -> None:
    """Store ``ids[i]`` as the id of record ``start + i`` in one statement; records with
    no id get no row, and a resubmission writes nothing twice."""
    rows = [
        {"batch_id": batch_id, "position": start + offset, "external_id": external_id}
        for offset, external_id in enumerate(ids)
        if external_id is not None
    ]
    if rows:
        # Executemany: SQLAlchemy batches the rows within each database's parameter limit.
        statement = insert(session, BatchExternalId).on_conflict_do_nothing(
            index_elements=["batch_id", "position"]
        )
        session.execute(statement, rows)


def iter_external_ids(session: Session, *, batch_id: str) -> Generator[tuple[int, str]]:
    """(position, id) of a batch's records that have one, in position order."""
    rows = session.execute(
        select(BatchExternalId.position, BatchExternalId.external_id)
        .where(BatchExternalId.batch_id == batch_id)
        .order_by(BatchExternalId.position)
        .execution_options(yield_per=5000)
    )
    # Closed even when the reader stops early: PostgreSQL streams it from a server cursor.
    with rows:
        yield from rows
