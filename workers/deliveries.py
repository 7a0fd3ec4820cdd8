"""A bound on poison messages: a message that kills its worker process every time.

Late acknowledgement with ``reject_on_worker_lost`` puts a message back on its queue
when the process running it dies, so no record is lost to a crash. A message that
itself causes the crash (a record that exhausts memory, a model that segfaults on it)
would then come back forever. The broker marks a message it hands out again as
redelivered (Redis and RabbitMQ do); only then is one row counted in ``task_delivery``,
so the common path pays nothing. Once a message has been delivered
``MLQ_MAX_DELIVERIES`` times, the next delivery does not run it: its records get error
rows (code ``poison_message``) and the message is acknowledged.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from celery import Task
from sqlalchemy.exc import OperationalError

from shared.contracts import TASK_PREDICT, TASK_PREDICT_BATCH, batch_request_id
from shared.db.deliveries import count_redelivery, forget_deliveries
from shared.db.engine import autocommit_connection, session_scope
from shared.db.models import utcnow
from shared.db.requests import copy_requests, existing_positions, get_response, record_requests
from shared.errors import MlqError
from shared.settings import get_settings
from workers.batch_serving import chunk_problem
from workers.serving import error_result, request_row, size_error, unkeyable

log = logging.getLogger(__name__)


class PoisonMessageError(MlqError):
    """The message was given up: every delivery ended with its worker process dead."""

    code = "poison_message"


class BoundedDeliveryTask(Task):
    """A task that stops running a message after ``MLQ_MAX_DELIVERIES`` deliveries."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        delivery_info = self.request.delivery_info or {}
        redelivered = bool(delivery_info.get("redelivered"))
        if redelivered:
            deliveries = self._count_delivery()
            limit = get_settings().max_deliveries
            if deliveries is not None and deliveries > limit:
                error = PoisonMessageError(
                    f"given up after {deliveries - 1} deliveries (MLQ_MAX_DELIVERIES="
                    f"{limit}): none finished, the worker process running it was lost "
                    "each time; it was not scored"
                )
                log.error("task %s (%s): %s", self.request.id, self.name, error.message)
                try:
                    result = give_up(
                        self.name, self.request.id, error, self._arguments(args, kwargs)
                    )
                except OperationalError as outage:
                    raise self.retry(exc=outage, countdown=5, max_retries=None) from outage
                self._forget_deliveries()
                return result
        result = super().__call__(*args, **kwargs)
        if redelivered:
            # It finished: a later redelivery of the same id (a restart, a batch submitted
            # again) starts counting afresh.
            self._forget_deliveries()
        return result

    def _arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The task's arguments by name, whether the producer sent them by name or not."""
        run: Any = getattr(self, "_orig_run", None) or self.run  # autoretry wraps ``run``
        try:
            return dict(inspect.signature(run).bind_partial(*args, **kwargs).arguments)
        except TypeError:
            return dict(kwargs)

    def _forget_deliveries(self) -> None:
        try:
            with autocommit_connection() as connection:
                forget_deliveries(connection, task_id=str(self.request.id))
        except OperationalError:
            log.warning("task %s: cannot clear its redelivery count now", self.request.id)

    def _count_delivery(self) -> int | None:
        """Deliveries so far, this one included; None when the database is unreachable
        (the task then runs, meets the same outage and is retried)."""
        try:
            with autocommit_connection() as connection:
                redeliveries = count_redelivery(
                    connection, task_id=str(self.request.id), task_name=self.name
                )
        except OperationalError:
            log.warning("task %s: cannot count its redelivery now", self.request.id)
            return None
        log.warning(
            "task %s (%s): redelivered, delivery %d", self.request.id, self.name, redeliveries + 1
        )
        return redeliveries + 1


def give_up(task_name: str, task_id: str, error: MlqError, kwargs: dict[str, Any]) -> Any:
    """Record the message's records as failed, writing no row twice; return its result."""
    if task_name == TASK_PREDICT:
        return _give_up_record(task_id, error, kwargs)
    if task_name == TASK_PREDICT_BATCH:
        return _give_up_chunk(error, kwargs)
    return {"status": "ERROR", "error": error.as_dict()}


def _give_up_record(task_id: str, error: MlqError, kwargs: dict[str, Any]) -> Any:
    request_id = kwargs.get("request_id") or task_id
    refused = unkeyable(request_id, kwargs.get("endpoint"))
    if refused is not None:  # no row can hold it: say why, in the log and the result
        log.error("task %s: given up; %s", task_id, refused.message)
        return {"status": "ERROR", "error": refused.as_dict()}
    record = kwargs.get("record")
    result = error_result(request_id, size_error(record) or error)
    row = request_row(result, endpoint=str(kwargs.get("endpoint")), record=record, latency_ms=0)
    with autocommit_connection() as connection:
        if record_requests(connection, rows=[row]) == 0:
            return get_response(connection, request_id=request_id)
    return result


def _give_up_chunk(error: MlqError, kwargs: dict[str, Any]) -> Any:
    batch_id, start, records = kwargs.get("batch_id"), kwargs.get("start"), kwargs.get("records")
    refused = chunk_problem(batch_id, kwargs.get("endpoint"), start, records)
    if refused is not None:
        log.error("chunk of batch %.64r: given up; %s", batch_id, refused.message)
        return {"status": "ERROR", "error": refused.as_dict()}
    assert isinstance(batch_id, str) and isinstance(start, int) and isinstance(records, list)
    now = utcnow()
    with session_scope() as session:
        done = existing_positions(
            session, batch_id=batch_id, start=start, stop=start + len(records)
        )
        rows = []
        for i, record in enumerate(records):
            if start + i in done:
                continue
            result = error_result(
                batch_request_id(batch_id, start + i), size_error(record) or error
            )
            row = request_row(
                result, endpoint=str(kwargs.get("endpoint")), record=record, latency_ms=0
            )
            row.update(batch_id=batch_id, batch_position=start + i, created_at=now)
            rows.append(row)
        written = copy_requests(session, rows=rows)
    return {
        "batch_id": batch_id,
        "start": start,
        "count": len(records),
        "ok": 0,
        "errors": len(rows),
        "written": written,
    }
