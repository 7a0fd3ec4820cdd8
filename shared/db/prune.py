"""`mlq db prune --older-than 90d`: drop the request log's days older than a cutoff,
keeping first what still refers to them.

A day goes whole (on PostgreSQL its partition is dropped; on SQLite its rows are
deleted), oldest first, each in a transaction of its own:

1. A day that holds evidence of a running A/B test (its requests, shadow answers, or
   past requests a replay re-scores) is kept, and said so: a test's figures must not
   change under it.
2. An ended test with evidence in the day gets its timeline frozen into its stored
   summary (the decision's own figures are frozen there already when it ends), so that
   `mlq ab show` shows what it showed before.
3. The day's rows are summarised in ``ml_request_summary``: per endpoint, algorithm,
   A/B test and arm, and kind (batch or single), the requests, errors, labelled and
   correct ones (the feedback that had joined them), absolute error and latency sums.
4. The feedback of the day's requests, its shadow answers and the replay rows naming
   its requests are deleted, then the day itself.

Feedback older than the cutoff whose request never got a row is deleted last.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    text,
    union,
)
from sqlalchemy.orm import Session

from shared.db import partitions
from shared.db.engine import session_scope
from shared.db.models import (
    ABReplayRequest,
    ABShadowAnswer,
    ABTest,
    Feedback,
    MLRequest,
    MLRequestSummary,
    as_utc,
    utcnow,
)

log = logging.getLogger(__name__)

# A DROP waits for queries on the table; it gives up after this rather than stall every
# writer queued behind it (the day is then kept and reported; run prune again).
LOCK_TIMEOUT = "5s"


@dataclass
class DayOutcome:
    day: date
    rows: int
    dropped: bool
    reason: str = ""  # why a day was kept
    feedback: int = 0
    shadow_answers: int = 0
    replay_requests: int = 0
    frozen_tests: list[int] = field(default_factory=list)


@dataclass
class PruneReport:
    cutoff: datetime
    dry_run: bool
    days: list[DayOutcome]
    orphan_feedback: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "dropped_days": [str(d.day) for d in self.days if d.dropped],
            "kept_days": {str(d.day): d.reason for d in self.days if not d.dropped},
            "rows_dropped": sum(d.rows for d in self.days if d.dropped),
            "feedback_deleted": sum(d.feedback for d in self.days if d.dropped),
            "orphan_feedback_deleted": self.orphan_feedback,
            "shadow_answers_deleted": sum(d.shadow_answers for d in self.days if d.dropped),
            "replay_requests_deleted": sum(d.replay_requests for d in self.days if d.dropped),
            "tests_frozen": sorted({t for d in self.days if d.dropped for t in d.frozen_tests}),
        }


def prune(
    older_than: timedelta, *, now: datetime | None = None, dry_run: bool = False
) -> PruneReport:
    """Drop every whole day of the request log older than ``now - older_than``."""
    now = as_utc(now or utcnow())
    cutoff = now - older_than
    # Only whole days: a day goes when all of it is older than the cutoff.
    last_day = partitions.day_of(cutoff) - timedelta(days=1)
    outcomes = [_prune_day(day, dry_run=dry_run) for day in _days_up_to(last_day)]
    with session_scope() as session:
        orphans = _orphan_feedback(session, before=partitions.day_start(last_day + timedelta(1)))
        if dry_run:
            orphans_count = session.execute(select(func.count()).select_from(orphans)).scalar_one()
            session.rollback()
        else:
            orphans_count = _count(
                session.execute(
                    delete(Feedback).where(Feedback.request_id.in_(select(orphans.c.request_id)))
                )
            )
    report = PruneReport(cutoff, dry_run, outcomes, orphans_count)
    log.info("prune: %s", report.as_dict())
    return report


def _days_up_to(last_day: date) -> Iterator[date]:
    with session_scope() as session:
        if partitions.is_partitioned(session):
            days = [d for d in partitions.existing_days(session) if d <= last_day]
        else:
            first = session.execute(select(func.min(MLRequest.created_at))).scalar_one()
            days = []
            if first is not None:
                day = partitions.day_of(first)
                while day <= last_day:
                    days.append(day)
                    day += timedelta(days=1)
    yield from days


def _prune_day(day: date, *, dry_run: bool) -> DayOutcome:
    start = partitions.day_start(day)
    end = partitions.day_start(day + timedelta(days=1))
    in_day = and_(MLRequest.created_at >= start, MLRequest.created_at < end)
    day_ids = select(MLRequest.id).where(in_day)
    with session_scope() as session:
        rows = session.execute(select(func.count()).where(in_day)).scalar_one()
        tests = _tests_with_evidence(session, in_day, start, end)
        running = [t.id for t in tests if t.ended_at is None]
        if running:
            reason = f"holds evidence of running A/B test(s) {', '.join(map(str, running))}"
            return DayOutcome(day, rows, False, reason)
        outcome = DayOutcome(day, rows, True)
        for test in tests:
            if _freeze_timeline(session, test):
                outcome.frozen_tests.append(test.id)
        _summarise(session, day, in_day)
        outcome.feedback = _count(
            session.execute(delete(Feedback).where(Feedback.request_id.in_(day_ids)))
        )
        outcome.shadow_answers = _count(
            session.execute(
                delete(ABShadowAnswer).where(
                    ABShadowAnswer.created_at >= start, ABShadowAnswer.created_at < end
                )
            )
        )
        outcome.replay_requests = _count(
            session.execute(delete(ABReplayRequest).where(ABReplayRequest.request_id.in_(day_ids)))
        )
        if dry_run:
            session.rollback()
            return outcome
        if partitions.is_partitioned(session):
            session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            session.execute(text(f"DROP TABLE {partitions.partition_name(day)}"))
        else:
            session.execute(delete(MLRequest).where(in_day))
    partitions.forget([day])
    log.info("prune: dropped %s (%d rows)", day, rows)
    return outcome


def _tests_with_evidence(
    session: Session, in_day: Any, start: datetime, end: datetime
) -> list[ABTest]:
    ids = union(
        select(MLRequest.ab_test_id).where(in_day, MLRequest.ab_test_id.is_not(None)),
        select(ABShadowAnswer.ab_test_id).where(
            ABShadowAnswer.created_at >= start, ABShadowAnswer.created_at < end
        ),
        select(ABReplayRequest.ab_test_id).where(
            ABReplayRequest.request_id.in_(select(MLRequest.id).where(in_day))
        ),
    ).subquery()
    return list(
        session.execute(select(ABTest).where(ABTest.id.in_(select(ids.c[0]))).order_by(ABTest.id))
        .scalars()
        .all()
    )


def _freeze_timeline(session: Session, test: ABTest) -> bool:
    """Store an ended test's timeline in its summary, once (before its first day goes)."""
    from shared.ab.answers import window_of
    from shared.ab.decision import METRIC_MAE
    from shared.ab.evaluation import settings_of
    from shared.ab.timeline import timeline

    summary = dict(test.summary or {})
    if "timeline" in summary or test.ended_at is None:
        return False
    window = window_of(test, test.ended_at)
    summary["timeline"] = timeline(
        session, test=test, window=window, regressor=settings_of(test).metric == METRIC_MAE
    )
    summary["timeline_frozen_at"] = utcnow().isoformat()
    test.summary = summary
    session.flush()
    return True


def _summarise(session: Session, day: date, in_day: Any) -> None:
    start = partitions.day_start(day)
    session.execute(delete(MLRequestSummary).where(MLRequestSummary.day == start))
    labelled = and_(MLRequest.status == "OK", Feedback.label.is_not(None))
    is_batch = MLRequest.batch_id.is_not(None)
    query = (
        select(
            literal(start).label("day"),
            MLRequest.endpoint,
            MLRequest.algorithm_id,
            MLRequest.ab_test_id,
            MLRequest.ab_arm,
            is_batch.label("batch"),
            func.count().label("requests"),
            func.count().filter(MLRequest.status == "ERROR").label("errors"),
            func.count().filter(labelled).label("labelled"),
            func.count().filter(and_(labelled, Feedback.label == MLRequest.label)).label("correct"),
            func.sum(
                case(
                    (
                        and_(labelled, MLRequest.value.is_not(None)),
                        func.abs(cast(Feedback.label, Float) - MLRequest.value),
                    )
                )
            ).label("abs_error_sum"),
            func.sum(MLRequest.latency_ms).label("latency_ms_sum"),
            literal(utcnow()).label("created_at"),
        )
        .outerjoin(Feedback, Feedback.request_id == MLRequest.id)
        .where(in_day)
        .group_by(
            MLRequest.endpoint,
            MLRequest.algorithm_id,
            MLRequest.ab_test_id,
            MLRequest.ab_arm,
            is_batch,
        )
    )
    columns = [
        "day",
        "endpoint",
        "algorithm_id",
        "ab_test_id",
        "ab_arm",
        "batch",
        "requests",
        "errors",
        "labelled",
        "correct",
        "abs_error_sum",
        "latency_ms_sum",
        "created_at",
    ]
    session.execute(insert(MLRequestSummary).from_select(columns, query))


def _orphan_feedback(session: Session, *, before: datetime) -> Any:
    """Feedback older than ``before`` whose request has no row (never had, or pruned)."""
    return (
        select(Feedback.request_id)
        .where(
            Feedback.created_at < before,
            ~exists().where(MLRequest.id == Feedback.request_id),
        )
        .subquery()
    )


def _count(result: Any) -> int:
    """Rows a DELETE removed."""
    return int(result.rowcount)
