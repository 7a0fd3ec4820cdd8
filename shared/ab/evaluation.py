"""Evaluating tests from the database: what `mlq ab stop` and `mlq ab show` run in the
producer, and what beat's task runs in a worker, so all decide the same way.

Beat evaluates every running live test every MLQ_AB_CHECK_SECONDS and ends one as soon
as its decision says stop (conclusive evidence, a guardrail breached, or the end time
reached). The sequential rule's p-values are valid however often they are looked at,
so neither these looks nor a stop at any moment raise the false-promotion rate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.ab.answers import Window, window_of
from shared.ab.counts import arm_counts, paired_counts
from shared.ab.decision import PAIRED_MODES, RULES, Decision, DecisionSettings, decide
from shared.ab.ending import finish_test
from shared.ab.errors import UnknownTestError
from shared.ab.start import named
from shared.contracts import LIVE_MODES, RULE_SEQUENTIAL
from shared.db.engine import session_scope
from shared.db.models import ABTest, as_utc, utcnow
from shared.registry import get_algorithm

log = logging.getLogger(__name__)

_SETTING_NAMES = {f.name for f in fields(DecisionSettings)}


@dataclass(frozen=True)
class Evaluation:
    decision: Decision
    window: Window
    summary: dict[str, Any]  # the evidence as stored: the decision, window and arms named


def get_test(session: Session, *, test_id: int) -> ABTest:
    test = session.get(ABTest, test_id)
    if test is None:
        raise UnknownTestError(f"no A/B test #{test_id}")
    return test


def settings_of(test: ABTest) -> DecisionSettings:
    """The settings a test is decided by: as stored when it started, or, for a test
    started before they were, from its columns (the fixed-horizon rule it had is gone:
    such a test is decided sequentially)."""
    if test.settings:
        return DecisionSettings(**{k: v for k, v in test.settings.items() if k in _SETTING_NAMES})
    rule = test.decision_rule if test.decision_rule in RULES else RULE_SEQUENTIAL
    return DecisionSettings(
        rule=rule, split=test.split, alpha=test.alpha, min_labelled=test.min_labelled
    )


def arm_names(session: Session, test: ABTest) -> dict[str, str]:
    return {
        arm: named(get_algorithm(session, algorithm_id=algorithm_id))
        for arm, algorithm_id in (("A", test.algorithm_a_id), ("B", test.algorithm_b_id))
    }


def evaluate(
    session: Session, *, test: ABTest, at: datetime, final: bool, also_final: bool = False
) -> list[Evaluation]:
    """Decide a test from its rows as they were at ``at``: one evaluation, or with
    ``also_final`` a second one of the same counts as if the test were stopped now."""
    settings = settings_of(test)
    window = window_of(test, at)
    counts = arm_counts(session, test=test, window=window)
    pairs = paired_counts(session, test=test, window=window) if test.mode in PAIRED_MODES else None
    names = arm_names(session, test)
    evaluations = []
    for is_final in (final, True) if also_final else (final,):
        decision = decide(counts["A"], counts["B"], final=is_final, settings=settings, pairs=pairs)
        summary = {
            **decision.summary(),
            "test_id": test.id,
            "algorithms": names,
            "window": window.as_dict(),
        }
        evaluations.append(Evaluation(decision, window, summary))
    return evaluations


def end_test(test_id: int, *, ended_by: str) -> dict[str, Any]:
    """Decide and end the test now, once; a test already ended reports how it ended
    (``ended_now`` says which)."""
    with session_scope() as session:
        test = get_test(session, test_id=test_id)
        if test.ended_at is None:
            at = utcnow()
            [evaluation] = evaluate(session, test=test, at=at, final=True)
            if finish_test(
                session,
                test=test,
                at=at,
                decision=evaluation.decision,
                summary=evaluation.summary,
                ended_by=ended_by,
            ):
                log.info(
                    "ab test %d ended by %s: %s", test_id, ended_by, evaluation.decision.text()
                )
                session.refresh(test)
                return {"ended_now": True, **describe(session, test)}
        # Ended before, or by a racing evaluator just now: report how it ended.
        session.expire_all()
        return {"ended_now": False, **describe(session, get_test(session, test_id=test_id))}


def running_test_ids(session: Session) -> list[int]:
    query = select(ABTest.id).where(ABTest.ended_at.is_(None), ABTest.mode.in_(LIVE_MODES))
    return list(session.execute(query.order_by(ABTest.id)).scalars())


def evaluate_running(*, ended_by: str = "beat") -> list[dict[str, Any]]:
    """Evaluate every running live test; end those whose decision says stop. One that
    fails does not stop the others (it is logged, and tried again at the next look)."""
    with session_scope() as session:
        ids = running_test_ids(session)
    outcomes = []
    for test_id in ids:
        try:
            outcomes.append(_evaluate_one(test_id, ended_by=ended_by))
        except Exception:
            log.exception("ab test %d could not be evaluated; beat will try again", test_id)
    return outcomes


def _evaluate_one(test_id: int, *, ended_by: str) -> dict[str, Any]:
    with session_scope() as session:
        test = get_test(session, test_id=test_id)
        at = utcnow()
        if test.ended_at is not None:
            return {"id": test_id, "ended_now": False, "reason": "ended already"}
        final = at >= as_utc(test.ends_at)
        [evaluation] = evaluate(session, test=test, at=at, final=final)
        decision = evaluation.decision
        ended = decision.stop and finish_test(
            session,
            test=test,
            at=at,
            decision=decision,
            summary=evaluation.summary,
            ended_by=ended_by,
        )
        log.info(
            "ab test %d evaluated by %s: %s%s",
            test_id,
            ended_by,
            decision.text(),
            " (ended)" if ended else "",
        )
        return {"id": test_id, "ended_now": ended, "reason": decision.reason}


def describe(
    session: Session, test: ABTest, *, names: dict[int, str] | None = None
) -> dict[str, Any]:
    """A test as `mlq ab list` and `mlq ab show` give it (its evidence once ended);
    ``names``: NAME@VERSION by algorithm id, when many tests are described at once."""
    if names is None:
        arms = arm_names(session, test)
    else:
        arms = {"A": names[test.algorithm_a_id], "B": names[test.algorithm_b_id]}
    return {
        "id": test.id,
        "title": test.title,
        "mode": test.mode,
        "state": "running" if test.ended_at is None else "ended",
        "a": arms["A"],
        "b": arms["B"],
        "rule": test.decision_rule,
        "settings": test.settings or {},
        "label_delay_s": test.label_delay_s,
        "created_by": test.created_by,
        "created_at": as_utc(test.created_at).isoformat(),
        "ends_at": as_utc(test.ends_at).isoformat(),
        "ended_at": as_utc(test.ended_at).isoformat() if test.ended_at else None,
        "ended_by": test.ended_by,
        "winner": {test.algorithm_a_id: arms["A"], test.algorithm_b_id: arms["B"]}.get(
            test.winner_id or 0
        ),
        "batch_id": test.batch_id,  # a replay's: the challenger's answers
        "summary": test.summary,
    }
