"""Feedback rows: the true label of a request, kept even before the request's row exists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from shared.db.dialect import insert
from shared.db.models import AppliedMessage, Feedback, MLRequest, utcnow


def existing_requests(session: Session | Connection, *, ids: Sequence[str]) -> dict[str, str]:
    """Request id to endpoint, for the ids that have a row."""
    rows = session.execute(select(MLRequest.id, MLRequest.endpoint).where(MLRequest.id.in_(ids)))
    return {request_id: endpoint for request_id, endpoint in rows}


def previous_labels(session: Session | Connection, *, ids: Sequence[str]) -> dict[str, str]:
    rows = session.execute(
        select(Feedback.request_id, Feedback.label).where(Feedback.request_id.in_(ids))
    )
    return {request_id: label for request_id, label in rows}


def upsert_feedback(session: Session | Connection, *, labels: dict[str, str]) -> None:
    """Store each label; a second label for a request replaces the first."""
    if not labels:
        return
    now = utcnow()
    statement = insert(session, Feedback)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["request_id"],
            set_={
                "label": statement.excluded.label,
                "updated_at": statement.excluded.updated_at,
                "times_given": Feedback.times_given + 1,
            },
        ),
        [
            {"request_id": rid, "label": label, "created_at": now, "updated_at": now}
            for rid, label in labels.items()
        ],
    )


def claim_message(session: Session, *, task_id: str) -> bool:
    """Claim a feedback message for this transaction; False if it was applied before."""
    claimed = session.execute(
        insert(session, AppliedMessage)
        .values(task_id=task_id, result={}, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["task_id"])
        .returning(AppliedMessage.task_id)
    ).scalar_one_or_none()
    return claimed is not None


def applied_result(session: Session, *, task_id: str) -> dict[str, Any] | None:
    """The result of a feedback message applied before, or None."""
    found = session.execute(
        select(AppliedMessage.result).where(AppliedMessage.task_id == task_id)
    ).scalar_one_or_none()
    return dict(found) if found is not None else None


def record_applied(session: Session, *, task_id: str, result: dict[str, Any]) -> None:
    session.execute(
        update(AppliedMessage).where(AppliedMessage.task_id == task_id).values(result=result)
    )
