"""A/B tests in the database: starting one, finding the running one, counting per arm,
and ending one exactly once with its promotion in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, and_, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.contracts import DECISION_RULES, DEFAULT_STATUS, STATUS_AB_TESTING
from shared.db.models import ABTest, Endpoint, Feedback, MLAlgorithmStatus, MLRequest, utcnow
from shared.errors import MlqError, NoAlgorithmError, UnknownRequestError
from shared.registry import AlgorithmInfo, endpoint_candidates, set_status


class ABTestError(MlqError):
    """The A/B test cannot be started."""

    code = "ab_test"


class UnknownTestError(UnknownRequestError):
    """No A/B test has this id."""

    code = "unknown_ab_test"


@dataclass(frozen=True)
class RunningTest:
    id: int
    split: float
    algorithm_a_id: int
    algorithm_b_id: int


def _pick(candidates: list[AlgorithmInfo], name: str, version: str | None) -> AlgorithmInfo:
    matches = [a for a in candidates if a.name == name and version in (None, a.version)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(f"{a.name} {a.version}" for a in candidates)
    if not matches:
        wanted = f"{name!r}" + (f" version {version!r}" if version else "")
        raise NoAlgorithmError(f"no algorithm {wanted} on this endpoint: {known}")
    raise ABTestError(f"several versions of {name!r}: give its version ({known})")


def start_test(
    session: Session,
    *,
    endpoint: str,
    a: str,
    b: str,
    duration: timedelta,
    split: float = 0.5,
    min_labelled: int = 200,
    alpha: float = 0.05,
    rule: str = DECISION_RULES[0],
    title: str | None = None,
    created_by: str,
    a_version: str | None = None,
    b_version: str | None = None,
) -> ABTest:
    """Start a test: A must be the endpoint's production algorithm (it stays in service),
    B is set to ab_testing; traffic is split from the next registry refresh on."""
    if not 0 < split < 1:
        raise ABTestError(
            f"split must be between 0 and 1 (the share of traffic for B), not {split}"
        )
    if not 0 < alpha < 1:
        raise ABTestError(f"alpha must be between 0 and 1, not {alpha}")
    if rule not in DECISION_RULES:
        raise ABTestError(f"unknown decision rule {rule!r}; use one of {', '.join(DECISION_RULES)}")
    if duration <= timedelta(0):
        raise ABTestError("the duration must be positive")
    candidates = endpoint_candidates(session, endpoint=endpoint)
    control, challenger = _pick(candidates, a, a_version), _pick(candidates, b, b_version)
    if control.status != DEFAULT_STATUS:
        raise ABTestError(
            f"A must be the production algorithm of {endpoint} (the control), and "
            f"{control.name} {control.version} is {control.status}"
        )
    if challenger.id == control.id:
        raise ABTestError("A and B are the same algorithm")
    endpoint_id = session.execute(select(Endpoint.id).where(Endpoint.name == endpoint)).scalar_one()
    _refuse_a_second_test(session, endpoint=endpoint, endpoint_id=endpoint_id)
    now = utcnow()
    test = ABTest(
        endpoint_id=endpoint_id,
        title=title
        or f"{control.name} {control.version} vs {challenger.name} {challenger.version}",
        created_by=created_by,
        created_at=now,
        ends_at=now + duration,
        algorithm_a_id=control.id,
        algorithm_b_id=challenger.id,
        split=split,
        min_labelled=min_labelled,
        alpha=alpha,
        decision_rule=rule,
    )
    try:
        with session.begin_nested():
            session.add(test)
            session.flush()
    except IntegrityError:
        # Another start won the race between the check above and this insert.
        _refuse_a_second_test(session, endpoint=endpoint, endpoint_id=endpoint_id)
        raise
    set_status(session, algorithm_id=challenger.id, status=STATUS_AB_TESTING, created_by=created_by)
    return test


def _refuse_a_second_test(session: Session, *, endpoint: str, endpoint_id: int) -> None:
    """Checked before inserting, so a refused start does not use up a test id."""
    running = session.execute(
        select(ABTest.id).where(ABTest.endpoint_id == endpoint_id, ABTest.ended_at.is_(None))
    ).scalar()
    if running is not None:
        raise ABTestError(
            f"an A/B test is already running on {endpoint} (test #{running}); stop it first"
        )


def running_test(session: Session, *, endpoint: str) -> RunningTest | None:
    row = session.execute(
        select(ABTest.id, ABTest.split, ABTest.algorithm_a_id, ABTest.algorithm_b_id)
        .join(Endpoint, Endpoint.id == ABTest.endpoint_id)
        .where(Endpoint.name == endpoint, ABTest.ended_at.is_(None))
    ).one_or_none()
    return RunningTest(*row) if row else None


def get_test(session: Session, *, test_id: int) -> ABTest:
    test = session.get(ABTest, test_id)
    if test is None:
        raise UnknownTestError(f"no A/B test #{test_id}")
    return test


def list_tests(session: Session) -> list[ABTest]:
    return list(session.execute(select(ABTest).order_by(ABTest.id)).scalars())


def arm_counts(session: Session, *, test_id: int) -> dict[str, tuple[int, int, int, int]]:
    """Per arm, from the MLRequest rows and their feedback: (requests, errors, labelled,
    correct). Only requests that were answered and have feedback are labelled."""
    labelled = and_(MLRequest.status == "OK", Feedback.label.is_not(None))
    rows = session.execute(
        select(
            MLRequest.ab_arm,
            func.count(),
            func.count().filter(MLRequest.status == "ERROR"),
            func.count().filter(labelled),
            func.sum(case((and_(labelled, Feedback.label == MLRequest.label), 1), else_=0)),
        )
        .outerjoin(Feedback, Feedback.request_id == MLRequest.id)
        .where(MLRequest.ab_test_id == test_id)
        .group_by(MLRequest.ab_arm)
    )
    counts = {"A": (0, 0, 0, 0), "B": (0, 0, 0, 0)}
    for arm, requests, errors, labelled_count, correct in rows:
        counts[arm] = (requests, errors, labelled_count, int(correct or 0))
    return counts


def labelled_timeline(session: Session, *, test_id: int) -> list[tuple[datetime, str, bool]]:
    """(time, arm, correct) of every labelled request of a test, oldest first."""
    rows = session.execute(
        select(MLRequest.created_at, MLRequest.ab_arm, Feedback.label == MLRequest.label)
        .join(Feedback, Feedback.request_id == MLRequest.id)
        .where(MLRequest.ab_test_id == test_id, MLRequest.status == "OK")
        .order_by(MLRequest.created_at)
    )
    return [(at, str(arm), bool(correct)) for at, arm, correct in rows]


def expired_test_ids(session: Session, *, now: datetime | None = None) -> list[int]:
    query = select(ABTest.id).where(ABTest.ended_at.is_(None), ABTest.ends_at <= (now or utcnow()))
    return list(session.execute(query).scalars())


def finish_test(
    session: Session,
    *,
    test_id: int,
    summary: dict[str, Any],
    winner_arm: str | None,
    promote: bool,
    ended_by: str,
) -> bool:
    """End the test and apply its decision, unless it has ended already (then False).

    The guarded UPDATE is what makes ending happen once: a second evaluator, whether a
    second beat or a stop racing the beat, waits for the first one's row lock and then
    finds ``ended_at`` set, so it changes nothing.
    """
    test = get_test(session, test_id=test_id)
    winner_id = {"A": test.algorithm_a_id, "B": test.algorithm_b_id}.get(winner_arm or "")
    ended: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(ABTest)
        .where(ABTest.id == test_id, ABTest.ended_at.is_(None))
        .values(ended_at=utcnow(), summary=summary, winner_id=winner_id, ended_by=ended_by)
    )
    if ended.rowcount != 1:
        return False
    who = f"ab test #{test_id} ({ended_by})"
    if promote:
        # Demote first: the database allows one production algorithm per endpoint. What
        # is demoted is whatever is in production now (A, unless someone changed it).
        current = session.execute(
            select(MLAlgorithmStatus.algorithm_id).where(
                MLAlgorithmStatus.endpoint_id == test.endpoint_id,
                MLAlgorithmStatus.active.is_(True),
                MLAlgorithmStatus.status == DEFAULT_STATUS,
            )
        ).scalar()
        if current is not None:
            set_status(session, algorithm_id=current, status="testing", created_by=who)
        set_status(session, algorithm_id=test.algorithm_b_id, status=DEFAULT_STATUS, created_by=who)
    else:
        set_status(session, algorithm_id=test.algorithm_b_id, status="testing", created_by=who)
    return True
