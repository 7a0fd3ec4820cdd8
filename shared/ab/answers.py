"""A test's answers, one SQL source for every mode, and the window that bounds them.

Each answer is one arm's answer to one request: (arm, request_id, created_at, status,
label, value, latency_ms). Where they come from depends on the mode:

- split: the request rows the test assigned (``ml_request.ab_test_id``), by arm;
- shadow: the control's rows (A), and the challenger's answers to the same requests
  (``ab_shadow_answer``, B); A's latency is its scoring time measured beside B's;
- replay: the past rows a replay re-scores (A), and its batch's rows (B), matched by
  ``ab_replay_request``; both carry the past request's time.

Counts, pairs and the timeline all read this source, so a rule about what counts (the
window, the label delay, feedback given in time) is written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, Select, and_, cast, literal, null, select, union_all
from sqlalchemy.orm import aliased
from sqlalchemy.sql.expression import ColumnElement

from shared.contracts import MODE_REPLAY, MODE_SHADOW
from shared.db.models import ABReplayRequest, ABShadowAnswer, ABTest, Feedback, MLRequest, as_utc


@dataclass(frozen=True)
class Window:
    """What an evaluation at time ``at`` counts.

    Requests created after ``until`` are outside the test (a worker's stale registry
    cache may route a few after the end; queued messages may be scored later); feedback
    given after ``at`` is not counted (so a frozen summary can be recomputed); requests
    created after ``eligible_until`` are too young to be expected to have a label.
    """

    at: datetime
    until: datetime | None  # None: a replay, whose requests are past ones
    label_delay_s: float

    @property
    def eligible_until(self) -> datetime:
        end = self.at if self.until is None else min(self.at, self.until)
        return end - timedelta(seconds=self.label_delay_s)

    def as_dict(self) -> dict[str, Any]:
        return {
            "evaluated_at": self.at.isoformat(),
            "requests_until": self.until.isoformat() if self.until else None,
            "label_delay_s": self.label_delay_s,
            "eligible_until": self.eligible_until.isoformat(),
        }


def window_of(test: ABTest, at: datetime) -> Window:
    """The window of an evaluation at ``at``: a live test counts requests up to its end
    time, or up to when it was stopped, or up to now while it runs."""
    until = None
    if test.mode != MODE_REPLAY:
        until = min(as_utc(at), as_utc(test.ends_at))
        if test.ended_at is not None:
            until = min(until, as_utc(test.ended_at))
    return Window(as_utc(at), until, test.label_delay_s or 0.0)


def answers(test: ABTest, window: Window, *, name: str = "answers") -> Any:
    """The test's answers in the window, as a subquery (see the module's docstring)."""
    if test.mode == MODE_REPLAY:
        parts = _replay_answers(test)
    elif test.mode == MODE_SHADOW:
        parts = _shadow_answers(test, window)
    else:
        parts = [_split_answers(test, window)]
    return union_all(*parts).subquery(name)


def feedback_in_time(answer_request_id: Any, window: Window) -> ColumnElement[bool]:
    """The join condition of an answer and its feedback, given by the evaluation time."""
    return and_(Feedback.request_id == answer_request_id, Feedback.created_at <= window.at)


def _bounded(query: Any, created_at: Any, window: Window) -> Any:
    return query if window.until is None else query.where(created_at <= window.until)


def _split_answers(test: ABTest, window: Window) -> Select[Any]:
    query = select(
        MLRequest.ab_arm.label("arm"),
        MLRequest.id.label("request_id"),
        MLRequest.created_at.label("created_at"),
        MLRequest.status.label("status"),
        MLRequest.label.label("label"),
        MLRequest.value.label("value"),
        MLRequest.latency_ms.label("latency_ms"),
    ).where(MLRequest.ab_test_id == test.id)
    return _bounded(query, MLRequest.created_at, window)


def _shadow_answers(test: ABTest, window: Window) -> list[Select[Any]]:
    # A's latency: its scoring time on the records B scored too, measured the same way
    # (a row's own latency also holds routing and validation, which B's does not).
    control = (
        select(
            literal("A").label("arm"),
            MLRequest.id.label("request_id"),
            MLRequest.created_at.label("created_at"),
            MLRequest.status.label("status"),
            MLRequest.label.label("label"),
            MLRequest.value.label("value"),
            ABShadowAnswer.control_latency_ms.label("latency_ms"),
        )
        .outerjoin(
            ABShadowAnswer,
            and_(ABShadowAnswer.ab_test_id == test.id, ABShadowAnswer.request_id == MLRequest.id),
        )
        .where(MLRequest.ab_test_id == test.id)
    )
    challenger = select(
        literal("B").label("arm"),
        ABShadowAnswer.request_id.label("request_id"),
        ABShadowAnswer.created_at.label("created_at"),
        ABShadowAnswer.status.label("status"),
        ABShadowAnswer.label.label("label"),
        ABShadowAnswer.value.label("value"),
        ABShadowAnswer.latency_ms.label("latency_ms"),
    ).where(ABShadowAnswer.ab_test_id == test.id)
    return [
        _bounded(control, MLRequest.created_at, window),
        _bounded(challenger, ABShadowAnswer.created_at, window),
    ]


def _replay_answers(test: ABTest) -> list[Select[Any]]:
    # A past request answered at one speed and its replay in a batch at another: their
    # latencies are not comparable, so a replay has none (no latency guardrail).
    past, replayed = aliased(MLRequest), aliased(MLRequest)
    no_latency = cast(null(), Float).label("latency_ms")
    control = (
        select(
            literal("A").label("arm"),
            past.id.label("request_id"),
            past.created_at.label("created_at"),
            past.status.label("status"),
            past.label.label("label"),
            past.value.label("value"),
            no_latency,
        )
        .select_from(ABReplayRequest)
        .join(past, past.id == ABReplayRequest.request_id)
        .where(ABReplayRequest.ab_test_id == test.id)
    )
    challenger = (
        select(
            literal("B").label("arm"),
            past.id.label("request_id"),
            past.created_at.label("created_at"),
            replayed.status.label("status"),
            replayed.label.label("label"),
            replayed.value.label("value"),
            no_latency,
        )
        .select_from(ABReplayRequest)
        .join(past, past.id == ABReplayRequest.request_id)
        .join(
            replayed,
            and_(
                replayed.batch_id == test.batch_id,
                replayed.batch_position == ABReplayRequest.position,
            ),
        )
        .where(ABReplayRequest.ab_test_id == test.id)
    )
    return [control, challenger]
