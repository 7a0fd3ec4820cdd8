"""The real worker (``celery -A tests.integration.poison_worker worker``) with one fault
planted: a record whose request id or batch id starts with ``poison-`` kills the pool
process scoring it, every time, as a record that crashes a native library would.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import workers
from workers import tasks

POISON = "poison-"
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


tasks.serve_prediction = serve_prediction  # type: ignore[assignment]
tasks.serve_chunk = serve_chunk  # type: ignore[assignment]
app = workers.app
