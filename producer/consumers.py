"""Is any worker consuming a queue? Asked when a wait is not answered at once, so that a
missing worker is named in about a second instead of a wait running to its timeout.

Workers answer Celery's remote-control broadcast ``active_queues`` with the queues they
consume. The first worker that names the queue ends the question at once; only when
none does is the full ``timeout`` spent. Brokers that cannot broadcast (kombu's
SQLAlchemy transport, the embedded default) cannot tell: there the question is not
asked and a wait runs to its timeout.

Usage::

    require_consumer(app, "predict")   # raises NoConsumerError naming the queue
    result = wait_checking_consumer(app, "predict", wait=..., finished=..., timeout=30)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Celery

from shared.errors import MlqError

# How long a wait runs before anyone asks whether a worker is there: a prediction is
# answered in milliseconds, so a wait still open after this is worth one question.
FIRST_LOOK_S = 0.5
# How long to wait for workers' replies to the broadcast (Celery's own default).
ANSWER_TIMEOUT_S = 1.0

T = TypeVar("T")


class NoConsumerError(MlqError):
    """No worker consumes the queue."""

    code = "no_worker"

    def __init__(self, queue: str) -> None:
        self.queue = queue
        super().__init__(
            f"no worker consumes queue {queue!r}: start one with celery -A workers worker"
        )


class _Found(Exception):
    """Raised from the reply callback to stop collecting replies at the first consumer."""

    def __init__(self, worker: str) -> None:
        self.worker = worker


def can_tell(app: Celery) -> bool:
    """Whether this broker carries broadcasts, without connecting to it."""
    return "fanout" in app.connection_for_read().transport.implements.exchange_type


def consuming_worker(app: Celery, queue: str, *, timeout: float = ANSWER_TIMEOUT_S) -> str | None:
    """The name of a worker that consumes ``queue``, or None when no worker that does
    answers within ``timeout``."""

    def on_reply(reply: dict[str, Any]) -> None:
        for worker, queues in reply.items():
            if any(isinstance(q, dict) and q.get("name") == queue for q in queues or ()):
                raise _Found(worker)

    try:
        app.control.broadcast("active_queues", reply=True, timeout=timeout, callback=on_reply)
    except _Found as found:
        return found.worker
    return None


def require_consumer(app: Celery, queue: str, *, timeout: float = ANSWER_TIMEOUT_S) -> None:
    """Raise NoConsumerError when the broker can tell and no worker consumes ``queue``."""
    if can_tell(app) and consuming_worker(app, queue, timeout=timeout) is None:
        raise NoConsumerError(queue)


def wait_checking_consumer(
    app: Celery,
    queue: str,
    *,
    wait: Callable[[float], T],
    finished: Callable[[T], bool],
    timeout: float,
) -> T:
    """``wait(seconds)`` up to ``timeout`` in all, asking once, after FIRST_LOOK_S, whether
    any worker consumes ``queue``: an answer that comes at once costs nothing extra."""
    started = time.monotonic()
    outcome = wait(min(timeout, FIRST_LOOK_S))
    if finished(outcome) or timeout <= 0:
        return outcome
    require_consumer(app, queue)
    remaining = timeout - (time.monotonic() - started)
    return wait(remaining) if remaining > 0 else outcome
