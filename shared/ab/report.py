"""What `mlq ab show` reports: the test, its evidence (frozen once it ended; while it
runs, what beat would do now and what a stop now would decide), and its timeline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from shared.ab.answers import window_of
from shared.ab.decision import METRIC_MAE
from shared.ab.evaluation import describe, evaluate, get_test, settings_of
from shared.ab.timeline import timeline
from shared.db.engine import session_scope
from shared.db.models import ABTest, MLAlgorithm, utcnow


def report(test_id: int) -> dict[str, Any]:
    with session_scope() as session:
        test = get_test(session, test_id=test_id)
        figures = describe(session, test)
        metric = settings_of(test).metric
        if test.ended_at is None:
            at = utcnow()
            beat, stopped = evaluate(session, test=test, at=at, final=False, also_final=True)
            figures["live"] = {
                "beat_would": "end the test" if beat.decision.stop else "keep running",
                "beat_reason": beat.decision.reason,
                "if_stopped_now": stopped.summary,
            }
            window = beat.window
        else:
            # Bounded as its frozen summary was: requests to its end, feedback given by then.
            window = window_of(test, test.ended_at)
        figures["metric"] = metric
        frozen = (test.summary or {}).get("timeline") if test.ended_at is not None else None
        # `mlq db prune` froze it before dropping requests it was drawn from.
        figures["timeline"] = (
            frozen
            if frozen is not None
            else timeline(session, test=test, window=window, regressor=metric == METRIC_MAE)
        )
    return figures


def list_tests() -> list[dict[str, Any]]:
    with session_scope() as session:
        names = {
            algorithm_id: f"{name}@{version}"
            for algorithm_id, name, version in session.execute(
                select(MLAlgorithm.id, MLAlgorithm.name, MLAlgorithm.version)
            )
        }
        tests = session.execute(select(ABTest).order_by(ABTest.id)).scalars()
        return [describe(session, test, names=names) for test in tests]
