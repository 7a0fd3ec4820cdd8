"""The real worker (``celery -A tests.integration.poison_worker worker``) with one fault
planted: a record whose request id or batch id starts with ``poison-`` kills the pool
process scoring it, every time, as a record that crashes a native library would. A task
whose id starts with ``deadletter-`` kills it earlier, before the task is called
(``task_prerun``): a crash that ``workers/deliveries.py`` cannot count, left to
RabbitMQ's delivery limit.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from celery.signals import task_prerun

import workers
from workers import tasks

POISON = "poison-"
DEAD_LETTER = "deadletter-"
_serve_prediction = tasks.serve_prediction
_serve_chunk = tasks.serve_chunk


def _die_on_poison(identifier: object) -> None:
    if str(identifier).startswith(POISON):
        os.kill(os.getpid(), signal.SIGKILL)


def serve_prediction(*args: Any, **kwargs: Any) -> Any:
    _die_on_poison(kwargs.get("request_id"))
    return _serve_prediction(*args, **kwargs)


def serve_chunk(*args: Any, **kwargs: Any) -> Any:
    _die_on_poison(kwargs.get("batch_id"))
    return _serve_chunk(*args, **kwargs)


@task_prerun.connect
def _die_before_the_task(task_id: str | None = None, **_: Any) -> None:
    if str(task_id).startswith(DEAD_LETTER):
        os.kill(os.getpid(), signal.SIGKILL)


tasks.serve_prediction = serve_prediction  # type: ignore[assignment]
tasks.serve_chunk = serve_chunk  # type: ignore[assignment]
app = workers.app
