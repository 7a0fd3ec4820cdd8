"""Each arm over request time, for `mlq ab show --plot`: at evenly spaced moments of the
test, the figures of the requests made up to then (accuracy or mean absolute error with
a 95% interval, label coverage, error rate), with the feedback known at evaluation.

One query however long the test: a column per moment and figure, one row per arm.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from shared.ab.answers import Window, answers, feedback_in_time
from shared.ab.counts import absolute_error
from shared.ab.statistics import wilson_interval
from shared.contracts import STATUS_ERROR, STATUS_OK
from shared.db.models import ABTest, Feedback, as_utc

POINTS = 24
Z_95 = 1.959963984540054
_FIGURES = 8  # columns per moment: see _columns


def moments(first: datetime, last: datetime, points: int = POINTS) -> list[datetime]:
    """Evenly spaced moments from the first request to the last (one when they coincide,
    as a batch's records can)."""
    if last <= first:
        return [last]
    return [first + (last - first) * (i / points) for i in range(1, points + 1)]


def timeline(
    session: Session, *, test: ABTest, window: Window, regressor: bool
) -> list[dict[str, Any]]:
    answer = answers(test, window)
    first, last = session.execute(
        select(func.min(answer.c.created_at), func.max(answer.c.created_at))
    ).one()
    if first is None:
        return []
    cutoffs = moments(as_utc(first), as_utc(last))
    answered = answer.c.status == STATUS_OK
    eligible = and_(answered, answer.c.created_at <= window.eligible_until)
    labelled = and_(eligible, Feedback.label.is_not(None))
    error = absolute_error(labelled, answer.c.value)
    columns = []
    for cutoff in cutoffs:
        made = answer.c.created_at <= cutoff
        columns += [
            func.count().filter(made),
            func.count().filter(and_(made, answer.c.status == STATUS_ERROR)),
            func.count().filter(and_(made, eligible)),
            func.count().filter(and_(made, labelled)),
            func.count().filter(and_(made, labelled, Feedback.label == answer.c.label)),
            func.count().filter(and_(made, error.is_not(None))),
            func.sum(_when(made, error)),
            func.sum(_when(made, error * error)),
        ]
    rows = session.execute(
        select(answer.c.arm, *columns)
        .select_from(answer)
        .outerjoin(Feedback, feedback_in_time(answer.c.request_id, window))
        .group_by(answer.c.arm)
    ).all()
    by_arm = {arm: figures for arm, *figures in rows}
    points = []
    for i, cutoff in enumerate(cutoffs):
        point: dict[str, Any] = {"at": cutoff.isoformat()}
        for arm in ("A", "B"):
            figures = by_arm.get(arm)
            point[arm] = (
                _arm_point(figures[i * _FIGURES : (i + 1) * _FIGURES], regressor)
                if figures
                else None
            )
        points.append(point)
    return points


def _when(condition: Any, value: Any) -> Any:
    return case((condition, value))


def _arm_point(figures: list[Any], regressor: bool) -> dict[str, Any]:
    requests, errors, eligible, labelled, correct, n, total, squares = figures
    point: dict[str, Any] = {
        "requests": requests,
        "error_rate": errors / requests if requests else None,
        "error_rate_interval": wilson_interval(errors, requests),
        "labelled": labelled,
        "coverage": labelled / eligible if eligible else None,
    }
    if regressor:
        point.update(_mean_with_interval(n, float(total or 0.0), float(squares or 0.0)))
    else:
        interval = wilson_interval(correct, labelled)
        point.update(
            value=correct / labelled if labelled else None,
            low=interval[0] if interval else None,
            high=interval[1] if interval else None,
        )
    return point


def _mean_with_interval(n: int, total: float, squares: float) -> dict[str, float | None]:
    """A mean absolute error with its normal 95% interval."""
    if n == 0:
        return {"value": None, "low": None, "high": None}
    mean = total / n
    if n < 2:
        return {"value": mean, "low": None, "high": None}
    spread = Z_95 * math.sqrt(max(0.0, (squares - total**2 / n) / (n - 1)) / n)
    return {"value": mean, "low": max(0.0, mean - spread), "high": mean + spread}
