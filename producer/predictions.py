"""Single predictions: enqueue one record, read its result by request id."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from typing import Any

from celery.backends.redis import RedisBackend
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult
from kombu.exceptions import EncodeError
from sqlalchemy.orm import Session

from producer.base import ClientBase
from producer.sending import send_task
from shared.contracts import (
    BATCH_SHAPED_ID,
    DEFAULT_ENDPOINT,
    ISSUED_STATE,
    MAX_ENDPOINT_LENGTH,
    MAX_REQUEST_ID_LENGTH,
    QUEUE_PREDICT,
    STATUS_ERROR,
    STATUS_QUEUED,
    STATUS_RUNNING,
    TASK_PREDICT,
    accepted_now,
    key_problem,
    parse_batch_request_id,
    record_limit_error,
    unknown_to_mlq,
)
from shared.db.batches import holds_position
from shared.db.engine import autocommit_connection, session_scope
from shared.db.ledger import (
    accepted_state,
    forget_accepted,
    ledger_on,
    pack,
    record_accepted,
)
from shared.db.requests import get_response
from shared.errors import InvalidRecordError, InvalidRequestError, UnknownRequestError
from shared.queues import queue_for
from shared.settings import get_settings

log = logging.getLogger(__name__)

BATCH_POLL_INTERVAL = 0.2
REMEMBERED_IDS = 10_000
IN_PROGRESS_STATES = {
    ISSUED_STATE: STATUS_QUEUED,
    "RECEIVED": STATUS_QUEUED,
    "STARTED": STATUS_RUNNING,
    "RETRY": STATUS_RUNNING,
}


class PredictionsMixin(ClientBase):
    def predict(
        self,
        record: Any,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        status: str | None = None,
        version: str | None = None,
        request_id: str | None = None,
        assignment_key: str | None = None,
    ) -> str:
        """Enqueue one record and return its request id at once.

        ``assignment_key`` (a user or session id, say) keeps a caller in the same arm of
        a running A/B test; without it the request id decides the arm. A request id no
        row can be keyed by (empty, over 128 characters) and a record over
        MLQ_MAX_RECORD_BYTES are refused here, before anything is sent.
        """
        request_id = str(uuid.uuid4()) if request_id is None else request_id
        for argument, problem in (
            ("request_id", key_problem(request_id, MAX_REQUEST_ID_LENGTH)),
            ("endpoint", key_problem(endpoint, MAX_ENDPOINT_LENGTH, empty_ok=True)),
        ):
            if problem:
                raise InvalidRequestError(argument, problem)
        if parse_batch_request_id(request_id) is not None:
            raise InvalidRequestError("request_id", BATCH_SHAPED_ID)
        refused = record_limit_error(record, get_settings().max_record_bytes)
        if refused is not None:
            raise refused
        kwargs: dict[str, Any] = {
            "record": record,
            "endpoint": endpoint,
            "request_id": request_id,
            "accepted_at": accepted_now(),
        }
        if status is not None:
            kwargs["status"] = status
        if version is not None:
            kwargs["version"] = version
        if assignment_key is not None:
            kwargs["assignment_key"] = assignment_key
        noted = ledger_on()
        if noted:
            # Durable before it is sent: once this returns, the reconciler finishes the
            # request whatever the broker or a worker loses (a refused record included).
            try:
                payload = pack(kwargs)
            except TypeError as error:  # what JSON cannot hold: a set, say
                raise InvalidRecordError(
                    None, f"the record cannot be sent as JSON: {error}"
                ) from None
            with autocommit_connection() as connection:
                record_accepted(
                    connection, producer="client", items=[(request_id, endpoint, payload)]
                )
        marks_after = isinstance(self.app.backend, RedisBackend)
        if not marks_after:
            # Before sending: written later, the mark could overwrite a finished result.
            self.app.backend.store_result(request_id, None, ISSUED_STATE)
        try:
            queue = queue_for(QUEUE_PREDICT, endpoint)
            send_task(self.app, TASK_PREDICT, kwargs=kwargs, task_id=request_id, queue=queue)
        except Exception as error:
            if not marks_after:
                with contextlib.suppress(Exception):  # the send's error is the one to report
                    self.app.backend.forget(request_id)
            if noted:  # not accepted after all: the caller is told it failed
                with contextlib.suppress(Exception), autocommit_connection() as connection:
                    forget_accepted(connection, request_id=request_id)
            if isinstance(error, EncodeError):  # what JSON cannot hold: a set, say
                raise InvalidRecordError(
                    None, f"the record cannot be sent as JSON: {error}"
                ) from None
            raise
        if marks_after:
            try:
                self._mark_issued_unless_done(request_id)
            except Exception as error:
                # Sent: the prediction will be made and its row written; only telling the
                # id apart from one never issued waits for that row.
                log.warning("request %s: sent, but not marked as issued: %s", request_id, error)
        self._remember(request_id)
        log.info("request %s: sent to %s on %s", request_id, TASK_PREDICT, endpoint)
        return request_id

    def _mark_issued_unless_done(self, request_id: str) -> None:
        """Mark the id as issued in Redis, unless the worker already stored its result.

        SET NX never overwrites, so the mark can follow the send (one round trip, no
        race), telling an issued id apart from one never issued (Celery's PENDING).
        """
        backend = self.app.backend
        meta = backend._get_result_meta(
            result=None, state=ISSUED_STATE, traceback=None, request=None
        )
        meta["task_id"] = request_id
        backend.client.set(
            backend.get_key_for_task(request_id),
            backend.encode(meta),
            nx=True,
            ex=get_settings().result_expires_s,
        )

    def _remember(self, request_id: str) -> None:
        self._issued[request_id] = None
        if len(self._issued) > REMEMBERED_IDS:
            del self._issued[next(iter(self._issued))]

    def result(self, request_id: str, timeout: float = 0) -> dict[str, Any]:
        """The result of a request: final (status OK or ERROR) once a worker recorded it.

        Waits up to ``timeout`` seconds for a final result; returns
        ``{"request_id", "status": "QUEUED" | "RUNNING"}`` when it is not final yet.
        Raises UnknownRequestError for an id no mlq producer accepted that has no row
        (another producer may still have it queued: the message says so).
        """
        state, value = self._backend_state(request_id, timeout)
        if state == "PENDING":
            # The backend does not know it: a record of a batch, an id never issued, or
            # one whose backend entry expired. The database keeps every recorded request.
            return self._stored_result(request_id, timeout)
        if state == "SUCCESS":
            return dict(value)
        if state == "FAILURE":
            return {
                "request_id": request_id,
                "status": STATUS_ERROR,
                "error": {"code": "task_failed", "message": repr(value)},
            }
        return {"request_id": request_id, "status": IN_PROGRESS_STATES.get(state, STATUS_QUEUED)}

    def _backend_state(self, request_id: str, timeout: float) -> tuple[str, Any]:
        """The Celery state and value of a task, waiting while it is in progress.

        A wait that times out leaves the result subscribed in Celery's backend, which
        would unsubscribe it from Redis at interpreter shutdown, when Python can no
        longer import anything (a traceback on exit): it is released here instead.
        """
        pending = AsyncResult(request_id, app=self.app)
        if timeout > 0 and (request_id in self._issued or pending.state in IN_PROGRESS_STATES):
            try:
                pending.get(timeout=timeout, propagate=False, interval=0.02)
            except CeleryTimeoutError:
                self.app.backend.remove_pending_result(pending)
        return pending.state, pending.result

    def _stored_result(self, request_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            with session_scope() as session:
                stored = get_response(session, request_id=request_id)
                if stored is not None:
                    return stored
                accepted = self._is_queued_batch_record(session, request_id) or (
                    accepted_state(session, request_id=request_id) is not None
                )
                if not accepted:
                    raise UnknownRequestError(unknown_to_mlq(request_id))
            if time.monotonic() >= deadline:
                return {"request_id": request_id, "status": STATUS_QUEUED}
            time.sleep(BATCH_POLL_INTERVAL)

    @staticmethod
    def _is_queued_batch_record(session: Session, request_id: str) -> bool:
        parsed = parse_batch_request_id(request_id)
        return parsed is not None and holds_position(
            session, batch_id=parsed[0], position=parsed[1]
        )
