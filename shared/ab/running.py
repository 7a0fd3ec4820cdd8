"""The running live test of an endpoint, as workers route by it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.contracts import LIVE_MODES, MODE_SPLIT
from shared.db.models import ABTest, Endpoint


@dataclass(frozen=True)
class RunningTest:
    id: int
    split: float
    algorithm_a_id: int
    algorithm_b_id: int
    mode: str = MODE_SPLIT


def running_test(session: Session, *, endpoint: str) -> RunningTest | None:
    """The endpoint's split or shadow test that has not ended (a replay serves no one)."""
    row = session.execute(
        select(ABTest.id, ABTest.split, ABTest.algorithm_a_id, ABTest.algorithm_b_id, ABTest.mode)
        .join(Endpoint, Endpoint.id == ABTest.endpoint_id)
        .where(Endpoint.name == endpoint, ABTest.ended_at.is_(None), ABTest.mode.in_(LIVE_MODES))
    ).one_or_none()
    return RunningTest(*row) if row else None
