"""Starting an A/B test: which two algorithms, how traffic reaches the challenger, and the
rule and settings that will decide it (stored with the test, shown with its evidence)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared.ab.decision import METRIC_ACCURACY, METRIC_MAE, DecisionSettings
from shared.ab.errors import ABTestError
from shared.contracts import DEFAULT_STATUS, LIVE_MODES, STATUS_AB_TESTING
from shared.db.models import ABTest, Endpoint, utcnow
from shared.errors import NoAlgorithmError
from shared.registry import AlgorithmInfo, endpoint_candidates, set_status

RETIRED = "retired"


def split_name(text: str) -> tuple[str, str | None]:
    """'random forest@0.0.2' -> ('random forest', '0.0.2'); a name alone -> (name, None)."""
    name, at, version = text.rpartition("@")
    return (name, version) if at and name and version else (text, None)


def named(algorithm: AlgorithmInfo) -> str:
    """How a test names an algorithm: NAME@VERSION, as `--a` and `--b` take it."""
    return f"{algorithm.name}@{algorithm.version}"


def pick_algorithm(candidates: list[AlgorithmInfo], text: str) -> AlgorithmInfo:
    """The endpoint's algorithm ``text`` names (NAME or NAME@VERSION); a name with
    several versions must say which."""
    name, version = split_name(text)
    matches = [a for a in candidates if a.name == name and version in (None, a.version)]
    if not matches and version is not None:  # a name that itself holds an '@'
        matches = [a for a in candidates if a.name == text]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(named(a) for a in candidates) or "none"
    if not matches:
        raise NoAlgorithmError(f"no algorithm {text!r} on this endpoint; it has: {known}")
    versions = ", ".join(named(a) for a in matches)
    raise ABTestError(f"{name!r} has several versions ({versions}): write NAME@VERSION")


def production_algorithm(candidates: list[AlgorithmInfo], endpoint: str) -> AlgorithmInfo:
    for algorithm in candidates:
        if algorithm.status == DEFAULT_STATUS:
            return algorithm
    raise ABTestError(f"{endpoint} has no production algorithm to test against")


def pick_pair(
    candidates: list[AlgorithmInfo], *, endpoint: str, a: str | None, b: str
) -> tuple[AlgorithmInfo, AlgorithmInfo]:
    """The control (default: the production algorithm) and the challenger."""
    control = (
        production_algorithm(candidates, endpoint) if a is None else pick_algorithm(candidates, a)
    )
    challenger = pick_algorithm(candidates, b)
    if challenger.id == control.id:
        raise ABTestError(f"A and B are the same algorithm ({named(control)})")
    if challenger.status == RETIRED:
        raise ABTestError(
            f"{named(challenger)} is retired: no worker holds it (register a new version)"
        )
    if control.kind != challenger.kind:
        raise ABTestError(
            f"{named(control)} is a {control.kind} and {named(challenger)} a "
            f"{challenger.kind}: their answers cannot be compared"
        )
    return control, challenger


def decision_settings(
    control: AlgorithmInfo, *, mode: str, options: dict[str, Any]
) -> DecisionSettings:
    """The settings a test is decided by; an unsafe value is refused with its reason."""
    metric = METRIC_MAE if control.kind == "regressor" else METRIC_ACCURACY
    try:
        return DecisionSettings(mode=mode, metric=metric, **options)
    except (TypeError, ValueError) as error:
        raise ABTestError(str(error)) from None


def start_test(
    session: Session,
    *,
    endpoint: str,
    b: str,
    a: str | None = None,
    duration: timedelta,
    mode: str = LIVE_MODES[0],
    label_delay: timedelta = timedelta(0),
    title: str | None = None,
    created_by: str,
    **options: Any,
) -> ABTest:
    """Start a live test: A must be the endpoint's production algorithm (it stays in
    service), B is set to ab_testing (its status before is kept, to go back to if it
    does not win); the traffic reaches B from the next registry refresh on.

    ``options`` are DecisionSettings' fields (rule, split, alpha, min_labelled,
    min_coverage, guardrail_alpha, latency_margin, ...).
    """
    if mode not in LIVE_MODES:
        raise ABTestError(
            f"unknown mode {mode!r}: use {' or '.join(LIVE_MODES)} (`mlq ab replay` replays)"
        )
    if duration <= timedelta(0):
        raise ABTestError("the duration must be positive")
    if label_delay < timedelta(0):
        raise ABTestError("the label delay must not be negative")
    candidates = endpoint_candidates(session, endpoint=endpoint)
    control, challenger = pick_pair(candidates, endpoint=endpoint, a=a, b=b)
    if control.status != DEFAULT_STATUS:
        raise ABTestError(
            f"A must be the production algorithm of {endpoint} (the control), and "
            f"{named(control)} is {control.status}"
        )
    settings = decision_settings(control, mode=mode, options=options)
    endpoint_id = session.execute(select(Endpoint.id).where(Endpoint.name == endpoint)).scalar_one()
    _refuse_a_second_test(session, endpoint=endpoint, endpoint_id=endpoint_id)
    now = utcnow()
    test = ABTest(
        endpoint_id=endpoint_id,
        title=title or f"{named(control)} vs {named(challenger)}",
        created_by=created_by,
        created_at=now,
        ends_at=now + duration,
        algorithm_a_id=control.id,
        algorithm_b_id=challenger.id,
        split=settings.split,
        min_labelled=settings.min_labelled,
        alpha=settings.alpha,
        decision_rule=settings.rule,
        mode=mode,
        settings=asdict(settings),
        label_delay_s=label_delay.total_seconds(),
        b_status_before=challenger.status,
    )
    try:
        with session.begin_nested():
            session.add(test)
            session.flush()
    except IntegrityError:
        # Another start won the race between the check above and this insert.
        _refuse_a_second_test(session, endpoint=endpoint, endpoint_id=endpoint_id)
        raise
    set_status(
        session,
        algorithm_id=challenger.id,
        status=STATUS_AB_TESTING,
        created_by=created_by,
        reason=f"challenger (B) of A/B test #{test.id} against {named(control)}, {mode}",
    )
    return test


def _refuse_a_second_test(session: Session, *, endpoint: str, endpoint_id: int) -> None:
    """Checked before inserting, so a refused start does not use up a test id."""
    running = session.execute(
        select(ABTest.id).where(
            ABTest.endpoint_id == endpoint_id,
            ABTest.ended_at.is_(None),
            ABTest.mode.in_(LIVE_MODES),
        )
    ).scalar()
    if running is not None:
        raise ABTestError(
            f"an A/B test is already running on {endpoint} (test #{running}); stop it first"
        )
