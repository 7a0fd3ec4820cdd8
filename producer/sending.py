"""Sending a task, with an outage of the broker or result backend turned into one clear
error: which service, where (password hidden), and that nothing of this call was sent."""

from __future__ import annotations

import time
from typing import Any

import kombu.exceptions
import redis.exceptions
from celery import Celery
from celery.result import AsyncResult

from shared.contracts import SENT_AT_HEADER
from shared.errors import MlqError
from shared.settings import get_settings, redact_url

# Celery's Redis result backend gives up reconnecting with a bare RuntimeError.
_BACKEND_GAVE_UP = "Retry limit exceeded while trying to reconnect to the Celery result store"


class BrokerUnavailableError(MlqError):
    """The broker or the result backend cannot be reached; nothing was sent."""

    code = "broker_unavailable"


def unavailable(app: Celery, error: BaseException) -> BrokerUnavailableError | None:
    """The clear error for an outage, or None when ``error`` is not one."""
    if isinstance(error, kombu.exceptions.OperationalError):
        where = f"the broker at {redact_url(str(app.conf.broker_url))}"
    elif isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError) or (
        isinstance(error, RuntimeError) and _BACKEND_GAVE_UP in str(error)
    ):
        where = f"the result backend at {redact_url(str(app.conf.result_backend))}"
    else:
        return None
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return BrokerUnavailableError(
        f"cannot reach {where} ({reason}); tried for {get_settings().send_timeout_s:g} s "
        "(MLQ_SEND_TIMEOUT)"
    )


def send_task(app: Celery, name: str, **options: Any) -> AsyncResult:
    """``app.send_task``, raising BrokerUnavailableError when a service is down."""
    options["headers"] = {**(options.get("headers") or {}), SENT_AT_HEADER: time.time()}
    try:
        return app.send_task(name, **options)
    except Exception as error:
        outage = unavailable(app, error)
        if outage is None:
            raise
        raise outage from error
