"""The Python client: enqueue predictions and read their results by request id.

Usage::

    from producer import Client

    client = Client()
    request_id = client.predict(record, endpoint="income_classifier")
    print(client.result(request_id, timeout=10))
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.backends.redis import RedisBackend
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult
from kombu.exceptions import EncodeError
from kombu.utils.json import dumps as json_dumps
from sqlalchemy.orm import Session

from producer.batch_input import BatchInputError, checked_chunks, chunked
from producer.batches import BatchSubmission, BatchSubmitError, UnknownBatchError
from producer.sending import send_task
from shared.ab_tests import get_test, list_tests, start_test
from shared.celery_app import app as default_app
from shared.contracts import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_ENDPOINT,
    FEEDBACK_CHUNK_SIZE,
    ISSUED_STATE,
    MAX_BATCH_ID_LENGTH,
    MAX_ENDPOINT_LENGTH,
    MAX_REQUEST_ID_LENGTH,
    RULE_SIGNIFICANCE,
    STATUS_ERROR,
    STATUS_QUEUED,
    STATUS_RUNNING,
    TASK_AB_REPORT,
    TASK_AB_STOP,
    TASK_FEEDBACK,
    TASK_PREDICT,
    TASK_PREDICT_BATCH,
    FeedbackResult,
    key_problem,
    parse_batch_request_id,
    record_limit_error,
)
from shared.db.batches import batch_progress, create_batch, finish_submission, holds_position
from shared.db.engine import session_scope
from shared.db.requests import get_response
from shared.errors import (
    InvalidRecordError,
    InvalidRequestError,
    UnknownRequestError,
)
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


class Client:
    """Sends work to mlqueue's workers and reads what they recorded."""

    def __init__(self, app: Celery | None = None) -> None:
        self.app = app or default_app
        # Ids this client sent recently: their results are waited for without first
        # asking the backend whether the id exists.
        self._issued: dict[str, None] = {}

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
        refused = record_limit_error(record, get_settings().max_record_bytes)
        if refused is not None:
            raise refused
        kwargs: dict[str, Any] = {"record": record, "endpoint": endpoint, "request_id": request_id}
        if status is not None:
            kwargs["status"] = status
        if version is not None:
            kwargs["version"] = version
        if assignment_key is not None:
            kwargs["assignment_key"] = assignment_key
        marks_after = isinstance(self.app.backend, RedisBackend)
        if not marks_after:
            # Before sending: written later, the mark could overwrite a finished result.
            self.app.backend.store_result(request_id, None, ISSUED_STATE)
        try:
            send_task(self.app, TASK_PREDICT, kwargs=kwargs, task_id=request_id)
        except Exception as error:
            if not marks_after:
                with contextlib.suppress(Exception):  # the send's error is the one to report
                    self.app.backend.forget(request_id)
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

    def submit_batch(
        self,
        records: Any,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        status: str | None = None,
        version: str | None = None,
        batch_id: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        source: str | None = None,
        on_sent: Callable[[int], None] | None = None,
    ) -> BatchSubmission:
        """Send many records (a DataFrame or any iterable of records) in chunks.

        Returns the batch id and the request id of every record, in input order. The
        input is streamed: only one chunk is held at a time. ``on_sent`` is called with
        the number of records sent so far after every chunk. Submitting again with the
        same ``batch_id`` and input writes nothing twice.
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        batch_id = uuid.uuid4().hex if batch_id is None else batch_id
        for argument, problem in (
            ("batch_id", key_problem(batch_id, MAX_BATCH_ID_LENGTH)),
            ("endpoint", key_problem(endpoint, MAX_ENDPOINT_LENGTH, empty_ok=True)),
        ):
            if problem:
                raise InvalidRequestError(argument, problem)
        # Checked against MLQ_MAX_BATCH_RECORDS and MLQ_MAX_RECORD_BYTES chunk by chunk.
        chunks = checked_chunks(records, chunk_size, batch_id)
        # Read the first chunk before recording the batch: input that cannot be read, or
        # holds nothing, must not leave a batch that waits for records forever.
        first = next(chunks, None)
        if first is None:
            raise BatchInputError("the input holds no records")
        with session_scope() as session:
            create_batch(
                session,
                batch_id=batch_id,
                endpoint=endpoint,
                status=status,
                version=version,
                source=source,
            )
        sent = 0
        for chunk in itertools.chain([first], chunks):
            kwargs: dict[str, Any] = {
                "batch_id": batch_id,
                "endpoint": endpoint,
                "start": sent,
                "records": chunk,
                "status": status,
                "version": version,
            }
            try:
                send_task(
                    self.app, TASK_PREDICT_BATCH, kwargs=kwargs, task_id=f"{batch_id}:chunk:{sent}"
                )
            except EncodeError:
                raise BatchSubmitError(
                    f"batch {batch_id}: sending stopped after {sent} records: "
                    f"{unencodable(chunk, start=sent)}; fix it and submit the same input "
                    f"again with batch id {batch_id} to finish it"
                ) from None
            except Exception as error:
                raise BatchSubmitError(
                    f"batch {batch_id}: sending stopped after {sent} records ({error}); "
                    f"records from position {sent} on were not sent: submit the same input "
                    f"again with batch id {batch_id} to finish it"
                ) from error
            log.info("batch %s: chunk %d+%d sent to %s", batch_id, sent, len(chunk), endpoint)
            sent += len(chunk)
            if on_sent:
                on_sent(sent)
        with session_scope() as session:
            finish_submission(session, batch_id=batch_id, total=sent)
        log.info("batch %s: all %d records sent", batch_id, sent)
        return BatchSubmission(batch_id, sent)

    def feedback(self, request_id: str, label: str, *, timeout: float = 30) -> FeedbackResult:
        """Give the true label of a request; wait for what became of it.

        The result says whether it was recorded, replaced an earlier label, arrived
        before its prediction (kept and joined later), or names an id never issued.
        """
        return self.feedback_many([(request_id, label)], timeout=timeout)

    def feedback_many(
        self,
        pairs: Iterable[tuple[str, str]],
        *,
        timeout: float = 300,
        chunk_size: int = FEEDBACK_CHUNK_SIZE,
        on_sent: Callable[[int], None] | None = None,
    ) -> FeedbackResult:
        """Give many (request_id, label) pairs, in messages of ``chunk_size``; the outcomes
        of all of them, merged."""
        pending = []
        sent = 0
        for chunk in chunked(pairs, chunk_size):
            items = [{"request_id": str(rid), "label": str(label)} for rid, label in chunk]
            pending.append(send_task(self.app, TASK_FEEDBACK, kwargs={"items": items}))
            log.info("feedback %s: %d labels sent", pending[-1].id, len(items))
            sent += len(items)
            if on_sent:
                on_sent(sent)
        merged: FeedbackResult = {
            "recorded": 0,
            "replaced": [],
            "early": [],
            "unknown": [],
            "invalid": [],
        }
        deadline = time.monotonic() + timeout
        for outcome in pending:
            part = outcome.get(timeout=max(0.1, deadline - time.monotonic()))
            merged["recorded"] += part["recorded"]
            for key in ("replaced", "early", "unknown", "invalid"):
                merged[key].extend(part[key])
        return merged

    def start_ab_test(
        self,
        *,
        endpoint: str,
        a: str,
        b: str,
        duration: timedelta,
        split: float = 0.5,
        min_labelled: int = 200,
        alpha: float = 0.05,
        rule: str = RULE_SIGNIFICANCE,
        title: str | None = None,
        created_by: str = "mlq",
    ) -> dict[str, Any]:
        """Start an A/B test between the production algorithm ``a`` and ``b``."""
        with session_scope() as session:
            test = start_test(
                session,
                endpoint=endpoint,
                a=a,
                b=b,
                duration=duration,
                split=split,
                min_labelled=min_labelled,
                alpha=alpha,
                rule=rule,
                title=title,
                created_by=created_by,
            )
            return {"id": test.id, "title": test.title, "ends_at": test.ends_at.isoformat()}

    def ab_tests(self) -> list[dict[str, Any]]:
        with session_scope() as session:
            return [
                {
                    "id": t.id,
                    "title": t.title,
                    "created_at": t.created_at.isoformat(),
                    "ends_at": t.ends_at.isoformat(),
                    "ended_at": t.ended_at.isoformat() if t.ended_at else None,
                    "result": (t.summary or {}).get("text"),
                }
                for t in list_tests(session)
            ]

    def ab_report(self, test_id: int, *, timeout: float = 60) -> dict[str, Any]:
        """Live figures per arm (computed by a worker), and the summary once ended."""
        self._require_test(test_id)
        return dict(send_task(self.app, TASK_AB_REPORT, args=[test_id]).get(timeout=timeout))

    def stop_ab_test(self, test_id: int, *, timeout: float = 60) -> dict[str, Any]:
        """Evaluate and end a test now (a test that has ended reports how it ended)."""
        self._require_test(test_id)
        return dict(send_task(self.app, TASK_AB_STOP, args=[test_id]).get(timeout=timeout))

    @staticmethod
    def _require_test(test_id: int) -> None:
        """Say here, not in a worker's traceback, that a test id does not exist."""
        with session_scope() as session:
            get_test(session, test_id=test_id)

    def batch_status(self, batch_id: str) -> dict[str, Any]:
        """Progress of a batch: total, done, ok, failed, rate (one database query)."""
        with session_scope() as session:
            progress = batch_progress(session, batch_id=batch_id)
        if progress is None:
            raise UnknownBatchError(f"no batch with id {batch_id!r} was ever submitted")
        return progress.as_dict()

    def result(self, request_id: str, timeout: float = 0) -> dict[str, Any]:
        """The result of a request: final (status OK or ERROR) once a worker recorded it.

        Waits up to ``timeout`` seconds for a final result; returns
        ``{"request_id", "status": "QUEUED" | "RUNNING"}`` when it is not final yet.
        Raises UnknownRequestError for an id that was never issued.
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
                if not self._is_queued_batch_record(session, request_id):
                    raise UnknownRequestError(f"no request with id {request_id!r} was ever issued")
            if time.monotonic() >= deadline:
                return {"request_id": request_id, "status": STATUS_QUEUED}
            time.sleep(BATCH_POLL_INTERVAL)

    @staticmethod
    def _is_queued_batch_record(session: Session, request_id: str) -> bool:
        parsed = parse_batch_request_id(request_id)
        return parsed is not None and holds_position(
            session, batch_id=parsed[0], position=parsed[1]
        )


def unencodable(chunk: list[Any], *, start: int) -> str:
    """Which record of a chunk JSON cannot carry (a set, say): kombu's error names none."""
    for position, record in enumerate(chunk, start):
        try:
            json_dumps(record)
        except (TypeError, ValueError) as error:
            return f"record {position} cannot be sent as JSON ({error})"
    return "the chunk cannot be sent as JSON"
