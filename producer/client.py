"""The Python client: enqueue predictions and read their results by request id.

Usage::

    from producer import Client

    client = Client()
    request_id = client.predict(record, endpoint="income_classifier")
    print(client.result(request_id, timeout=10))
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult

from shared.celery_app import app as default_app
from shared.contracts import (
    DEFAULT_ENDPOINT,
    ISSUED_STATE,
    STATUS_ERROR,
    STATUS_QUEUED,
    STATUS_RUNNING,
    TASK_PREDICT,
)
from shared.db.engine import session_scope
from shared.db.requests import get_response
from shared.errors import UnknownRequestError

IN_PROGRESS_STATES = {
    ISSUED_STATE: STATUS_QUEUED,
    "RECEIVED": STATUS_QUEUED,
    "STARTED": STATUS_RUNNING,
    "RETRY": STATUS_RUNNING,
}


class Client:
    """Sends work to mlqueue's workers and reads what they recorded."""

    def __init__(self, app: Celery | None = None) -> None:
        self.app = app or default_app

    def predict(
        self,
        record: Any,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        status: str | None = None,
        version: str | None = None,
        request_id: str | None = None,
    ) -> str:
        """Enqueue one record and return its request id at once."""
        request_id = request_id or str(uuid.uuid4())
        kwargs: dict[str, Any] = {"record": record, "endpoint": endpoint, "request_id": request_id}
        if status is not None:
            kwargs["status"] = status
        if version is not None:
            kwargs["version"] = version
        # Marked before sending: a worker that finishes first overwrites the mark.
        self.app.backend.store_result(request_id, None, ISSUED_STATE)
        try:
            self.app.send_task(TASK_PREDICT, kwargs=kwargs, task_id=request_id)
        except Exception:
            self.app.backend.forget(request_id)
            raise
        return request_id

    def result(self, request_id: str, timeout: float = 0) -> dict[str, Any]:
        """The result of a request: final (status OK or ERROR) once a worker recorded it.

        Waits up to ``timeout`` seconds for a final result; returns
        ``{"request_id", "status": "QUEUED" | "RUNNING"}`` when it is not final yet.
        Raises UnknownRequestError for an id that was never issued.
        """
        pending = AsyncResult(request_id, app=self.app)
        state = pending.state
        if state == "PENDING":
            # The backend does not know it: never issued, or its backend entry expired.
            # The database keeps every recorded request for good.
            with session_scope() as session:
                stored = get_response(session, request_id=request_id)
            if stored is None:
                raise UnknownRequestError(f"no request with id {request_id!r} was ever issued")
            return stored
        if state in IN_PROGRESS_STATES and timeout > 0:
            with contextlib.suppress(CeleryTimeoutError):
                pending.get(timeout=timeout, propagate=False, interval=0.02)
            state = pending.state
        if state == "SUCCESS":
            return dict(pending.result)
        if state == "FAILURE":
            return {
                "request_id": request_id,
                "status": STATUS_ERROR,
                "error": {"code": "task_failed", "message": repr(pending.result)},
            }
        return {"request_id": request_id, "status": IN_PROGRESS_STATES.get(state, STATUS_QUEUED)}
