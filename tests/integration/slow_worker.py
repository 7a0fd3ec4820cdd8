"""The real worker (``celery -A tests.integration.slow_worker worker``) with one fault
planted: the first time a record whose request id or batch id starts with ``slow-`` is
scored, the pool process hangs past every time limit (ignoring the soft one, as native
code stuck in a lock would). Later deliveries score normally. A file under MLQ_HOME
marks the first time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

import workers
from shared.settings import get_settings
from workers import tasks

SLOW = "slow-"
_serve_prediction = tasks.serve_prediction
_serve_chunk = tasks.serve_chunk


def _hang_the_first_time(identifier: object) -> None:
    if not str(identifier).startswith(SLOW):
        return
    marker = Path(get_settings().home) / f"hung-{identifier}"
    if marker.exists():
        return
    marker.touch()
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        try:
            time.sleep(0.5)
        except SoftTimeLimitExceeded:  # stuck code never sees it
            continue


def serve_prediction(*args: Any, **kwargs: Any) -> Any:
    _hang_the_first_time(kwargs.get("request_id"))
    return _serve_prediction(*args, **kwargs)


def serve_chunk(*args: Any, **kwargs: Any) -> Any:
    _hang_the_first_time(kwargs.get("batch_id"))
    return _serve_chunk(*args, **kwargs)


tasks.serve_prediction = serve_prediction  # type: ignore[assignment]
tasks.serve_chunk = serve_chunk  # type: ignore[assignment]
app = workers.app
