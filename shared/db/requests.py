"""Reading and writing MLRequest rows, one per prediction, keyed by request id."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.dialect import insert
from shared.db.models import MLRequest


def record_requests(session: Session, *, rows: Sequence[dict[str, Any]]) -> int:
    """Insert request rows; a row whose id exists already is left as it was.

    A redelivered message therefore writes nothing twice. Returns how many rows were new.
    """
    if not rows:
        return 0
    result = session.execute(
        insert(session, MLRequest)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(MLRequest.id)
    )
    return len(result.all())


def get_response(session: Session, *, request_id: str) -> dict[str, Any] | None:
    """The stored result of a request, or None when no row has it yet."""
    response = session.execute(
        select(MLRequest.response).where(MLRequest.id == request_id)
    ).scalar_one_or_none()
    return dict(response) if response is not None else None
