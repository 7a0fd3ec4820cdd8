"""Evaluating A/B tests: live figures, and ending a test (by beat or by `mlq ab stop`)."""

from __future__ import annotations

import logging
from typing import Any

from shared.ab_tests import arm_counts, expired_test_ids, finish_test, get_test, labelled_timeline
from shared.db.engine import session_scope
from workers.ab_statistics import ArmCounts, Decision, decide, wilson_interval

log = logging.getLogger(__name__)

TIMELINE_POINTS = 20


def _decision(session: Any, test_id: int) -> Decision:
    test = get_test(session, test_id=test_id)
    counts = arm_counts(session, test_id=test_id)
    return decide(
        ArmCounts(*counts["A"]),
        ArmCounts(*counts["B"]),
        split=test.split,
        min_labelled=test.min_labelled,
        alpha=test.alpha,
        rule=test.decision_rule,
    )


def describe(test: Any) -> dict[str, Any]:
    return {
        "id": test.id,
        "title": test.title,
        "algorithm_a_id": test.algorithm_a_id,
        "algorithm_b_id": test.algorithm_b_id,
        "split": test.split,
        "min_labelled": test.min_labelled,
        "alpha": test.alpha,
        "decision_rule": test.decision_rule,
        "created_at": test.created_at.isoformat(),
        "ends_at": test.ends_at.isoformat(),
        "ended_at": test.ended_at.isoformat() if test.ended_at else None,
        "ended_by": test.ended_by,
        "winner_id": test.winner_id,
    }


def end_test(test_id: int, *, ended_by: str) -> dict[str, Any]:
    """Decide and end the test once; a test already ended reports how it ended."""
    with session_scope() as session:
        test = get_test(session, test_id=test_id)
        if test.ended_at is None:
            decision = _decision(session, test_id)
            ended = finish_test(
                session,
                test_id=test_id,
                summary=decision.summary(),
                winner_arm=decision.winner,
                promote=decision.promote,
                ended_by=ended_by,
            )
            if ended:
                log.info("ab test %d ended by %s: %s", test_id, ended_by, decision.text())
                return {
                    "ended_now": True,
                    **describe(get_test(session, test_id=test_id)),
                    "summary": decision.summary(),
                }
        session.expire_all()
        test = get_test(session, test_id=test_id)
        return {"ended_now": False, **describe(test), "summary": test.summary}


def end_expired(*, ended_by: str = "beat") -> list[dict[str, Any]]:
    """End every test whose time is up; one that fails to end does not stop the others
    (it is logged, and tried again at the next beat)."""
    with session_scope() as session:
        ids = expired_test_ids(session)
    ended = []
    for test_id in ids:
        try:
            ended.append(end_test(test_id, ended_by=ended_by))
        except Exception:
            log.exception("ab test %d could not be ended; beat will try again", test_id)
    return ended


def report(test_id: int) -> dict[str, Any]:
    """Live figures of a test (what ending it now would decide) and a timeline of each
    arm's cumulative accuracy with its 95% interval, for plotting."""
    with session_scope() as session:
        test = get_test(session, test_id=test_id)
        decision = _decision(session, test_id)
        events = labelled_timeline(session, test_id=test_id)
        figures = {**describe(test), "live": decision.summary(), "summary": test.summary}
    figures["timeline"] = _timeline(events)
    return figures


def _timeline(events: list[tuple[Any, str, bool]]) -> list[dict[str, Any]]:
    if not events:
        return []
    step = max(1, len(events) // TIMELINE_POINTS)
    totals = {"A": [0, 0], "B": [0, 0]}
    points = []
    for index, (at, arm, correct) in enumerate(events, start=1):
        totals[arm][0] += int(correct)
        totals[arm][1] += 1
        if index % step == 0 or index == len(events):
            point: dict[str, Any] = {"at": at.isoformat()}
            for name, (right, labelled) in totals.items():
                interval = wilson_interval(right, labelled)
                point[name] = (
                    {
                        "accuracy": right / labelled,
                        "low": interval[0],
                        "high": interval[1],
                        "labelled": labelled,
                    }
                    if interval
                    else None
                )
            points.append(point)
    return points
