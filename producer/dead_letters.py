"""Replaying a dead letter: remove the error rows its give-up wrote, note it in the
ledger again and send it, so that it is scored afresh (with the reconciler behind it)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from producer.sending import send_task
from shared.contracts import (
    QUEUE_BATCH,
    QUEUE_PREDICT,
    TASK_PREDICT,
    TASK_PREDICT_BATCH,
    TASK_QUEUES,
)
from shared.db.dead_letters import clear_for_replay, get_dead_letter
from shared.db.deliveries import forget_deliveries
from shared.db.engine import session_scope
from shared.db.ledger import ledger_on, pack, record_accepted, record_chunk
from shared.db.models import DeadLetter
from shared.errors import UnknownRequestError
from shared.queues import queue_for


class UnknownDeadLetterError(UnknownRequestError):
    """No dead letter with this id."""

    code = "unknown_dead_letter"


def letter_as_dict(letter: DeadLetter) -> dict[str, Any]:
    kwargs = letter.kwargs
    return {
        "id": letter.id,
        "task": letter.task_name,
        "task_id": letter.task_id,
        "records": len(kwargs.get("records") or kwargs.get("items") or [None]),
        "error_code": letter.error_code,
        "error": letter.error_message,
        "created_at": letter.created_at.isoformat(),
        "replayed_at": letter.replayed_at.isoformat() if letter.replayed_at else None,
    }


def replay(app: Celery, letter_id: int) -> dict[str, Any]:
    """Send a dead letter's message again; returns the letter and how many error rows
    were removed."""
    with session_scope() as session:
        letter = get_dead_letter(session, letter_id=letter_id)
        if letter is None:
            raise UnknownDeadLetterError(f"no dead letter with id {letter_id}")
        removed = clear_for_replay(session, letter=letter, error_code=letter.error_code)
        kwargs = dict(letter.kwargs)
        name, task_id = letter.task_name, letter.task_id
        if ledger_on() and name == TASK_PREDICT:
            record_accepted(
                session,
                producer="replay",
                items=[(str(kwargs.get("request_id") or task_id), str(kwargs["endpoint"]), kwargs)],
            )
        elif ledger_on() and name == TASK_PREDICT_BATCH:
            record_chunk(
                session,
                batch_id=str(kwargs["batch_id"]),
                start=int(kwargs["start"]),
                count=len(kwargs["records"]),
                payload=pack(kwargs),
            )
        forget_deliveries(session.connection(), task_id=task_id)
        described = letter_as_dict(letter)
    base = TASK_QUEUES.get(name, QUEUE_PREDICT)
    queue = (
        queue_for(base, str(kwargs.get("endpoint", "")))
        if base in (QUEUE_PREDICT, QUEUE_BATCH)
        else base
    )
    send_task(app, name, kwargs=kwargs, task_id=task_id, queue=queue)
    return {**described, "removed_error_rows": removed}
