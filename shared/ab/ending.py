"""Ending a test exactly once, with what its decision does to the challenger's status in
the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from shared.ab.decision import Decision
from shared.contracts import MODE_REPLAY
from shared.db.models import ABTest
from shared.lifecycle import promote
from shared.registry import get_algorithm, set_status

# Where a challenger goes back to when the status it had before is unknown (a test
# started before it was kept).
FALLBACK_STATUS = "testing"


def finish_test(
    session: Session,
    *,
    test: ABTest,
    at: datetime,
    decision: Decision,
    summary: dict[str, Any],
    ended_by: str,
) -> bool:
    """End the test at ``at`` and apply its decision, unless it has ended already (then
    False and nothing changes).

    The guarded UPDATE is what makes ending happen once: a second evaluator, whether a
    second beat or a stop racing the beat, waits for the first one's row lock and then
    finds ``ended_at`` set, so it changes nothing. A winning challenger is promoted (the
    algorithm in production now goes to staging); one that does not win goes back to the
    status it had before the test. Each change is a status-history row saying why.
    """
    winner_id = {"A": test.algorithm_a_id, "B": test.algorithm_b_id}.get(decision.winner or "")
    ended: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(ABTest)
        .where(ABTest.id == test.id, ABTest.ended_at.is_(None))
        .values(ended_at=at, summary=summary, winner_id=winner_id, ended_by=ended_by)
    )
    if ended.rowcount != 1:
        return False
    if test.mode == MODE_REPLAY:
        return True  # a replay never changed a status
    who = f"ab test #{test.id} ({ended_by})"
    reason = f"A/B test #{test.id}: {decision.reason}"
    challenger = get_algorithm(session, algorithm_id=test.algorithm_b_id)
    if decision.promote:
        promote(
            session,
            endpoint=challenger.endpoint,
            name=challenger.name,
            version=challenger.version,
            created_by=who,
            reason=reason,
        )
    else:
        set_status(
            session,
            algorithm_id=challenger.id,
            status=test.b_status_before or FALLBACK_STATUS,
            created_by=who,
            reason=reason,
        )
    return True
