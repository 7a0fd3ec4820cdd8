"""Dead letters: messages given up (poison, or never finished), kept to list and replay."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, CursorResult, delete, insert, select, update
from sqlalchemy.orm import Session

from shared.contracts import batch_request_id
from shared.db.models import DeadLetter, MLRequest, utcnow


def record_dead_letter(
    executor: Session | Connection,
    *,
    task_name: str,
    task_id: str,
    kwargs: dict[str, Any],
    error_code: str,
    error_message: str,
) -> None:
    executor.execute(
        insert(DeadLetter).values(
            task_name=task_name,
            task_id=task_id,
            kwargs=kwargs,
            error_code=error_code,
            error_message=error_message,
            created_at=utcnow(),
        )
    )


def list_dead_letters(session: Session, *, include_replayed: bool = False) -> list[DeadLetter]:
    query = select(DeadLetter).order_by(DeadLetter.id)
    if not include_replayed:
        query = query.where(DeadLetter.replayed_at.is_(None))
    return list(session.execute(query).scalars())


def get_dead_letter(session: Session, *, letter_id: int) -> DeadLetter | None:
    return session.get(DeadLetter, letter_id)


def request_ids_of(letter: DeadLetter) -> list[str]:
    """The request ids whose rows a give-up wrote for this message."""
    kwargs = letter.kwargs
    if "records" in kwargs and "batch_id" in kwargs:
        start = int(kwargs.get("start") or 0)
        return [
            batch_request_id(str(kwargs["batch_id"]), start + i)
            for i in range(len(kwargs["records"]))
        ]
    if "items" in kwargs:
        return [str(item.get("request_id")) for item in kwargs["items"] if isinstance(item, dict)]
    return [str(kwargs.get("request_id") or letter.task_id)]


def clear_for_replay(session: Session, *, letter: DeadLetter, error_code: str) -> int:
    """Remove the error rows the give-up wrote (only those: rows with its error code),
    so that the replayed message writes real ones; mark the letter replayed."""
    ids = request_ids_of(letter)
    removed = 0
    for first in range(0, len(ids), 1000):
        deleted: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            delete(MLRequest).where(
                MLRequest.id.in_(ids[first : first + 1000]), MLRequest.error_code == error_code
            )
        )
        removed += int(deleted.rowcount or 0)
    session.execute(
        update(DeadLetter).where(DeadLetter.id == letter.id).values(replayed_at=utcnow())
    )
    return removed
