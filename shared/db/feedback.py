"""Feedback rows: the true label of a request, kept even before the request's row exists."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from shared.db.dialect import insert
from shared.db.models import Feedback, MLRequest, utcnow


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
