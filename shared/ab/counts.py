"""What a decision is made of, from SQL aggregates over a test's answers in a window:
per arm (requests, errors, eligible, labelled, correct, latency and absolute-error
sums) and, for shadow and replay tests, the paired records."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, and_, case, cast, func, select
from sqlalchemy.orm import Session

from shared.ab.answers import Window, answers, feedback_in_time
from shared.ab.statistics import ArmCounts, PairedCounts, SampleSums
from shared.contracts import STATUS_ERROR, STATUS_OK
from shared.db.models import ABTest, Feedback


def _sums(column: Any) -> list[Any]:
    """n, sum and sum of squares of a column (its NULLs left out)."""
    return [func.count(column), func.sum(column), func.sum(column * column)]


def _sample(n: int | None, total: float | None, squares: float | None) -> SampleSums:
    return SampleSums(int(n or 0), float(total or 0.0), float(squares or 0.0))


def absolute_error(labelled: Any, value: Any) -> Any:
    """|true value - prediction| of a regressor's labelled answer (its label is the true
    value, a number checked when it was given); NULL for a classifier's."""
    return case((and_(labelled, value.is_not(None)), func.abs(cast(Feedback.label, Float) - value)))


def arm_counts(session: Session, *, test: ABTest, window: Window) -> dict[str, ArmCounts]:
    """Per arm, over the window: every answer counts as a request; answered ones old
    enough for their label to be due are eligible; those with feedback given by the
    evaluation time are labelled."""
    answer = answers(test, window)
    answered = answer.c.status == STATUS_OK
    eligible = and_(answered, answer.c.created_at <= window.eligible_until)
    labelled = and_(eligible, Feedback.label.is_not(None))
    seconds = case((answered, answer.c.latency_ms / 1000.0))
    rows = session.execute(
        select(
            answer.c.arm,
            func.count(),
            func.count().filter(answer.c.status == STATUS_ERROR),
            func.count().filter(eligible),
            func.count().filter(labelled),
            func.count().filter(and_(labelled, Feedback.label == answer.c.label)),
            *_sums(seconds),
            *_sums(absolute_error(labelled, answer.c.value)),
        )
        .select_from(answer)
        .outerjoin(Feedback, feedback_in_time(answer.c.request_id, window))
        .group_by(answer.c.arm)
    )
    counts = {"A": ArmCounts(0, 0, 0, 0, eligible=0), "B": ArmCounts(0, 0, 0, 0, eligible=0)}
    for arm, requests, errors, eligible_count, labelled_count, correct, *sums in rows:
        counts[arm] = ArmCounts(
            requests=requests,
            errors=errors,
            labelled=labelled_count,
            correct=correct,
            latency=_sample(*sums[:3]),
            eligible=eligible_count,
            absolute_error=_sample(*sums[3:]),
        )
    return counts


def paired_counts(session: Session, *, test: ABTest, window: Window) -> PairedCounts:
    """A shadow or replay test's records as pairs (A's answer and B's to one request),
    with the request's feedback."""
    a, b = answers(test, window, name="a"), answers(test, window, name="b")
    both = and_(a.c.status == STATUS_OK, b.c.status == STATUS_OK)
    labelled = and_(both, a.c.created_at <= window.eligible_until, Feedback.label.is_not(None))
    a_right, b_right = a.c.label == Feedback.label, b.c.label == Feedback.label
    error_a = absolute_error(labelled, a.c.value)
    error_b = absolute_error(labelled, b.c.value)
    row = session.execute(
        select(
            func.count().filter(and_(labelled, a_right, b_right)),
            func.count().filter(and_(labelled, a_right, b.c.label != Feedback.label)),
            func.count().filter(and_(labelled, a.c.label != Feedback.label, b_right)),
            func.count().filter(
                and_(labelled, a.c.label != Feedback.label, b.c.label != Feedback.label)
            ),
            func.count().filter(and_(a.c.status == STATUS_ERROR, b.c.status == STATUS_OK)),
            func.count().filter(and_(a.c.status == STATUS_OK, b.c.status == STATUS_ERROR)),
            func.count().filter(both),
            func.count().filter(and_(both, a.c.label == b.c.label)),
            *_sums(error_a),
            *_sums(error_b),
            *_sums(error_b - error_a),
        )
        .select_from(a)
        .join(b, a.c.request_id == b.c.request_id)
        .outerjoin(Feedback, feedback_in_time(a.c.request_id, window))
        .where(a.c.arm == "A", b.c.arm == "B")
    ).one()
    cells, sums = [int(n or 0) for n in row[:8]], row[8:]
    return PairedCounts(
        both_correct=cells[0],
        only_a_correct=cells[1],
        only_b_correct=cells[2],
        both_wrong=cells[3],
        only_a_errors=cells[4],
        only_b_errors=cells[5],
        compared=cells[6],
        agreed=cells[7],
        absolute_error_a=_sample(*sums[:3]),
        absolute_error_b=_sample(*sums[3:6]),
        error_difference=_sample(*sums[6:]),
    )
