"""Counting redeliveries of a message, one atomic upsert per redelivery."""

from __future__ import annotations

from sqlalchemy import Connection, delete

from shared.db.dialect import insert
from shared.db.models import TaskDelivery, utcnow


def count_redelivery(connection: Connection, *, task_id: str, task_name: str) -> int:
    """Note one more redelivery of ``task_id``; return how many there have been.

    INSERT ... ON CONFLICT DO UPDATE ... RETURNING is atomic, so two workers that get
    the same message at once (after a visibility timeout) still count two.
    """
    now = utcnow()
    statement = insert(connection, TaskDelivery).values(
        task_id=task_id, task_name=task_name, redeliveries=1, first_at=now, last_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=["task_id"],
        set_={"redeliveries": TaskDelivery.redeliveries + 1, "last_at": now},
    ).returning(TaskDelivery.redeliveries)
    return int(connection.execute(statement).scalar_one())


def forget_deliveries(connection: Connection, *, task_id: str) -> None:
    """The message finished (or was given up): its count starts afresh if it comes back."""
    connection.execute(delete(TaskDelivery).where(TaskDelivery.task_id == task_id))
