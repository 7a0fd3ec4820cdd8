"""Naming a queue nobody consumes: the question is asked only when a wait is not
answered at once, stops at the first worker that consumes the queue, and is not asked
of a broker that cannot broadcast."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

from producer import consumers
from producer.consumers import (
    FIRST_LOOK_S,
    NoConsumerError,
    can_tell,
    consuming_worker,
    require_consumer,
    wait_checking_consumer,
)
from shared.embedded_broker import TRANSPORT_PATH


class Replies:
    """Stands in for ``app.control.broadcast``: hands each reply to the callback in turn."""

    def __init__(self, *replies: dict[str, Any]) -> None:
        self.replies = replies
        self.given = 0

    def __call__(self, command: str, *, callback: Any, **options: Any) -> list[Any]:
        assert command == "active_queues" and options["reply"] is True
        for reply in self.replies:
            self.given += 1
            callback(reply)
        return list(self.replies)


def app_with(monkeypatch: pytest.MonkeyPatch, replies: Replies) -> Celery:
    app = Celery("consumers", broker="memory://")
    monkeypatch.setattr(app.control, "broadcast", replies)
    return app


def test_the_first_worker_that_consumes_the_queue_ends_the_question(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replies = Replies(
        {"batch@a": [{"name": "batch"}]},
        {"single@b": [{"name": "feedback"}, {"name": "predict"}]},
        {"single@c": [{"name": "predict"}]},
    )
    assert consuming_worker(app_with(monkeypatch, replies), "predict") == "single@b"
    assert replies.given == 2  # the third reply was never waited for


def test_no_worker_consuming_the_queue_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    app = app_with(monkeypatch, Replies({"batch@a": [{"name": "batch"}]}, {"odd@b": None}))
    assert consuming_worker(app, "predict") is None
    with pytest.raises(NoConsumerError) as caught:
        require_consumer(app, "predict")
    assert str(caught.value) == (
        "no worker consumes queue 'predict': start one with celery -A workers worker"
    )


def test_a_broker_without_broadcast_is_not_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    embedded = Celery("embedded", broker="sqlite:///unused.sqlite")
    embedded.conf.broker_transport = TRANSPORT_PATH
    assert can_tell(embedded) is False
    assert can_tell(Celery("redis", broker="redis://127.0.0.1:1/0")) is True
    asked = Replies()
    monkeypatch.setattr(embedded.control, "broadcast", asked)
    require_consumer(embedded, "predict")  # cannot tell: says nothing
    assert asked.given == 0


def waits(outcomes: list[str], log: list[float]) -> Any:
    def wait(seconds: float) -> str:
        log.append(seconds)
        return outcomes.pop(0)

    return wait


def test_an_answer_at_first_look_costs_no_question(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumers, "require_consumer", lambda *a, **k: pytest.fail("asked"))
    log: list[float] = []
    done = wait_checking_consumer(
        Celery("x"), "predict", wait=waits(["OK"], log), finished=lambda o: o == "OK", timeout=30
    )
    assert done == "OK" and log == [FIRST_LOOK_S]


def test_an_open_wait_asks_once_then_waits_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(consumers, "require_consumer", lambda app, queue: asked.append(queue))
    log: list[float] = []
    done = wait_checking_consumer(
        Celery("x"),
        "batch",
        wait=waits(["QUEUED", "OK"], log),
        finished=lambda o: o == "OK",
        timeout=30,
    )
    assert done == "OK" and asked == ["batch"]
    assert log[0] == FIRST_LOOK_S and 29 < log[1] <= 30  # the rest of the 30 s


def test_no_consumer_ends_the_wait_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    def nobody(app: Celery, queue: str) -> None:
        raise NoConsumerError(queue)

    monkeypatch.setattr(consumers, "require_consumer", nobody)
    log: list[float] = []
    with pytest.raises(NoConsumerError, match="'feedback'"):
        wait_checking_consumer(
            Celery("x"),
            "feedback",
            wait=waits(["QUEUED", "OK"], log),
            finished=lambda o: o == "OK",
            timeout=30,
        )
    assert log == [FIRST_LOOK_S]
