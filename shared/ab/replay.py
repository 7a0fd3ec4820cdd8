"""Replays: a challenger re-scores inputs the control already answered, before any live
traffic reaches it. The inputs go through the batch path (a batch whose records are
those inputs); ``ab_replay_request`` maps each batch position to the request it
replays, so the challenger's answers pair with the control's and with the feedback
already given. A replay is a test of mode "replay": shown and decided like the others,
but it serves no one and promotes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shared.ab.errors import ABTestError
from shared.ab.start import decision_settings, named, pick_pair
from shared.contracts import MODE_REPLAY
from shared.db.models import ABReplayRequest, ABTest, Endpoint, MLRequest, utcnow
from shared.registry import endpoint_candidates

DEFAULT_LIMIT = 10_000


@dataclass(frozen=True)
class Replay:
    """A replay recorded and ready to send: its test, and the batch to send its records
    as, to the challenger alone (by its id, whatever its status)."""

    test_id: int
    batch_id: str
    records: list[dict[str, Any]]
    algorithm_id: int


def start_replay(
    session: Session,
    *,
    endpoint: str,
    b: str,
    a: str | None = None,
    since: timedelta,
    limit: int = DEFAULT_LIMIT,
    created_by: str,
    **options: Any,
) -> Replay:
    """Record a replay of the newest ``limit`` requests A answered within ``since``."""
    if limit < 1:
        raise ABTestError("the limit must be at least 1")
    candidates = endpoint_candidates(session, endpoint=endpoint)
    control, challenger = pick_pair(candidates, endpoint=endpoint, a=a, b=b)
    settings = decision_settings(control, mode=MODE_REPLAY, options=options)
    now = utcnow()
    past = _past_requests(
        session, endpoint=endpoint, algorithm_id=control.id, since=now - since, limit=limit
    )
    if not past:
        raise ABTestError(
            f"{named(control)} answered no request of {endpoint} in that time that could be "
            "replayed"
        )
    endpoint_id = session.execute(select(Endpoint.id).where(Endpoint.name == endpoint)).scalar_one()
    batch_id = f"replay-{uuid.uuid4().hex}"
    test = ABTest(
        endpoint_id=endpoint_id,
        title=f"replay: {named(control)} vs {named(challenger)}",
        created_by=created_by,
        created_at=now,
        ends_at=now,
        algorithm_a_id=control.id,
        algorithm_b_id=challenger.id,
        split=settings.split,
        min_labelled=settings.min_labelled,
        alpha=settings.alpha,
        decision_rule=settings.rule,
        mode=MODE_REPLAY,
        settings=asdict(settings),
        label_delay_s=0.0,
        b_status_before=challenger.status,
        batch_id=batch_id,
    )
    session.add(test)
    session.flush()
    session.add_all(
        ABReplayRequest(ab_test_id=test.id, position=position, request_id=request_id)
        for position, (request_id, _) in enumerate(past)
    )
    return Replay(test.id, batch_id, [record for _, record in past], challenger.id)


def _past_requests(
    session: Session, *, endpoint: str, algorithm_id: int, since: Any, limit: int
) -> list[tuple[str, dict[str, Any]]]:
    """(request id, input) of the newest requests the algorithm answered, leaving out
    inputs that were not stored as records (refused ones) and earlier replays' records."""
    replays = select(ABTest.batch_id).where(ABTest.batch_id.is_not(None))
    rows = session.execute(
        select(MLRequest.id, MLRequest.input)
        .where(
            MLRequest.endpoint == endpoint,
            MLRequest.algorithm_id == algorithm_id,
            MLRequest.created_at >= since,
            or_(MLRequest.batch_id.is_(None), MLRequest.batch_id.not_in(replays)),
        )
        .order_by(MLRequest.created_at.desc(), MLRequest.id)
        .limit(limit)
    )
    return [(request_id, record) for request_id, record in rows if isinstance(record, dict)]
