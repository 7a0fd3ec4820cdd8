"""A bound on poison messages: a message that kills its worker process every time.

Late acknowledgement with ``reject_on_worker_lost`` puts a message back on its queue
when the process running it dies, so no record is lost to a crash. A message that
itself causes the crash (a record that exhausts memory, a model that segfaults on it)
would then come back forever. The broker marks a message it hands out again as
redelivered (Redis and RabbitMQ do); only then is one row counted in ``task_delivery``,
so the common path pays nothing. Once a message has been delivered
``MLQ_MAX_DELIVERIES`` times, the next delivery does not run it: its records get error
rows (code ``poison_message``) and the message is acknowledged.

On RabbitMQ the quorum queues bound deliveries too (``MLQ_BROKER_DELIVERY_LIMIT``, set
above ``MLQ_MAX_DELIVERIES``): a backstop for a message that dies before this bound can
count it (say, while the database is down). The broker then moves it to the dead-letter
queue, which ``DeadLetters`` declares when a worker connects (shared/broker.py).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from celery import Task, bootsteps
from celery.exceptions import Retry, SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from shared.broker import declare_dead_letter_queue, is_amqp
from shared.contracts import TASK_PREDICT, TASK_PREDICT_BATCH, TASK_PREDICT_MANY
from shared.db.dead_letters import record_dead_letter
from shared.db.deliveries import count_redelivery, forget_deliveries
from shared.db.engine import autocommit_connection
from shared.errors import MlqError
from shared.json_safe import json_safe
from shared.settings import get_settings
from workers.batch_serving import serve_chunk
from workers.request_checks import chunk_problem, unkeyable
from workers.serving import serve_group, serve_prediction

log = logging.getLogger(__name__)


class PoisonMessageError(MlqError):
    """The message was given up: every delivery ended with its worker process dead."""

    code = "poison_message"


class TimeLimitError(MlqError):
    """The work ran past its soft time limit on every try."""

    code = "time_limit"


class BoundedDeliveryTask(Task):
    """A task that stops running a message after ``MLQ_MAX_DELIVERIES`` deliveries, and
    retries one that passed its soft time limit as many times before giving it up."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._bounded_call(*args, **kwargs)
        except Retry:
            # It ran and asked to run again (an outage, a soft time limit): it is not a
            # message that kills its process, so its crash count starts afresh.
            if (self.request.delivery_info or {}).get("redelivered"):
                self._forget_deliveries()
            raise
        except SoftTimeLimitExceeded:
            limit = get_settings().max_deliveries
            if self.request.retries < limit:
                log.warning(
                    "task %s (%s): past its soft time limit, retry %d of %d",
                    self.request.id,
                    self.name,
                    self.request.retries + 1,
                    limit,
                )
                raise self.retry(countdown=1, max_retries=None) from None
            error = TimeLimitError(
                f"given up after {limit + 1} tries: each ran past the soft time limit "
                f"({self.soft_time_limit or get_settings().soft_time_limit_s} s, "
                "MLQ_SOFT_TIME_LIMIT); it was not scored"
            )
            log.error("task %s (%s): %s", self.request.id, self.name, error.message)
            return give_up(self.name, self.request.id, error, self._arguments(args, kwargs))

    def _bounded_call(self, *args: Any, **kwargs: Any) -> Any:
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
    """Record the message's records as failed, writing no row twice, and keep it as a
    dead letter (``mlq dead-letters``); return its result."""
    with autocommit_connection() as connection:
        record_dead_letter(
            connection,
            task_name=task_name,
            task_id=str(task_id),
            kwargs=json_safe(kwargs),
            error_code=error.code,
            error_message=error.message,
        )
    return _error_rows(task_name, task_id, error, kwargs)


def _error_rows(task_name: str, task_id: str, error: MlqError, kwargs: dict[str, Any]) -> Any:
    from workers.runtime import REGISTRY, STORE

    if task_name == TASK_PREDICT:
        request_id = kwargs.get("request_id") or task_id
        refused = unkeyable(request_id, kwargs.get("endpoint"))
        if refused is not None:  # no row can hold it: say why, in the log and the result
            log.error("task %s: given up; %s", task_id, refused.message)
            return {"status": "ERROR", "error": refused.as_dict()}
        return serve_prediction(
            STORE,
            REGISTRY,
            request_id=request_id,
            record=kwargs.get("record"),
            endpoint=str(kwargs.get("endpoint")),
            failure=error,
        )
    if task_name == TASK_PREDICT_MANY:
        return serve_group(
            STORE,
            REGISTRY,
            items=kwargs.get("items") or [],
            endpoint=str(kwargs.get("endpoint")),
            failure=error,
        )
    if task_name == TASK_PREDICT_BATCH:
        batch_id, start, records = (kwargs.get(k) for k in ("batch_id", "start", "records"))
        refused = chunk_problem(batch_id, kwargs.get("endpoint"), start, records)
        if refused is not None:
            log.error("chunk of batch %.64r: given up; %s", batch_id, refused.message)
            return {"status": "ERROR", "error": refused.as_dict()}
        return serve_chunk(
            STORE,
            REGISTRY,
            batch_id=str(batch_id),
            endpoint=str(kwargs.get("endpoint")),
            start=int(start),  # type: ignore[arg-type]
            records=records,  # type: ignore[arg-type]
            failure=error,
        )
    return {"status": "ERROR", "error": error.as_dict()}


class DeadLetters(bootsteps.StartStopStep):
    """A consumer step: on RabbitMQ, declare the dead-letter exchange and queue on every
    (re)connection, before a message can be dead-lettered into them (a message
    dead-lettered to an exchange that does not exist is dropped)."""

    requires = ("celery.worker.consumer.connection:Connection",)

    def start(self, consumer: Any) -> None:
        if is_amqp(str(consumer.app.conf.broker_url)):
            declare_dead_letter_queue(consumer.connection)
