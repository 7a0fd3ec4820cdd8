"""What depends on which broker: the task queues' declarations and the transport options.

Producers and workers build their queues here from the same settings, so both declare
each queue alike (RabbitMQ refuses a second declaration that differs).

- Redis: a queue is a list and takes no arguments; an unacknowledged message comes back
  after the visibility timeout.
- RabbitMQ (``amqp://``): every task queue is a quorum queue (replicated, kept on disk,
  never dropped by a restart) behind a topic exchange of its own, published with
  publisher confirms (a send returns once the broker has the message). A quorum queue
  counts the deliveries of each message: past ``MLQ_BROKER_DELIVERY_LIMIT`` it moves
  the message to the dead-letter queue ``mlq.dead-letter`` instead of handing it out
  again. That is a backstop: ``workers/deliveries.py`` gives a poison message up earlier
  (after ``MLQ_MAX_DELIVERIES``) and writes its records' error rows. Nothing consumes the
  dead-letter queue; an operator reads it (docs/operations.md).

Why topic exchanges: Celery carries a task retried with a countdown (a database outage
backs off this way) through RabbitMQ's "native delayed delivery" exchanges when the
queues are quorum queues, and that routes only through topic exchanges. With direct
ones the worker would hold the waiting task itself, taking a prefetch slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery.app.amqp import AMQP, Queues
from kombu import Connection, Exchange, Queue

from shared.contracts import QUEUE_BATCH, QUEUE_PREDICT, QUEUES
from shared.settings import Settings, get_settings

DEAD_LETTER = "mlq.dead-letter"
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")


def is_amqp(url: str) -> bool:
    return url.startswith(AMQP_SCHEMES)


def task_queue(name: str, *, broker_url: str, delivery_limit: int) -> Queue:
    """The declaration of one task queue (shared or an isolated endpoint's own)."""
    if not is_amqp(broker_url):
        return Queue(name, Exchange(name, type="direct"), routing_key=name)
    return Queue(
        name,
        Exchange(name, type="topic", durable=True),
        routing_key=name,
        durable=True,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER,
        },
    )


def dead_letter_queue() -> Queue:
    """Where RabbitMQ moves a message past its delivery limit (keeps its routing key;
    the ``x-death`` header says which queue it came from)."""
    return Queue(
        DEAD_LETTER,
        Exchange(DEAD_LETTER, type="fanout", durable=True),
        routing_key="",
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )


def declare_dead_letter_queue(connection: Connection) -> None:
    """Declare the dead-letter exchange and queue (idempotent): workers do at start,
    before they take any message that could be dead-lettered."""
    with connection.channel() as channel:
        dead_letter_queue().bind(channel).declare()


@dataclass(frozen=True)
class BrokerOptions:
    """Celery settings, by their lowercase keys, for one broker URL."""

    broker_url: str
    transport_options: dict[str, Any]
    task_queues: tuple[Queue, ...]

    def as_celery(self) -> dict[str, Any]:
        return {
            "broker_url": self.broker_url,
            "broker_transport_options": self.transport_options,
            "task_queues": self.task_queues,
            # Quorum queues refuse a global prefetch: Celery then sets it per consumer.
            "worker_detect_quorum_queues": True,
        }


def broker_options(
    settings: Settings | None = None, broker_url: str | None = None
) -> BrokerOptions:
    settings = settings or get_settings()
    url = broker_url or settings.broker_url
    limit = int(settings.broker_delivery_limit or settings.max_deliveries + 2)
    queues = tuple(task_queue(n, broker_url=url, delivery_limit=limit) for n in QUEUES)
    # A host that does not answer fails a connection attempt after 4 s, not the
    # operating system's minutes (celeryconfig's send retry policy).
    options: dict[str, Any]
    if is_amqp(url):
        options = {"confirm_publish": True, "connect_timeout": 4}
    else:
        options = {
            # A live worker renews the lease of every message it holds (workers/leases.py):
            # only a dead worker's messages reach this age and come back.
            "visibility_timeout": settings.visibility_timeout_s,
            # Look for them every 5 s rather than kombu's default of every 100 s (10 s x a
            # throttle of 10).
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
            "socket_connect_timeout": 4,
        }
    return BrokerOptions(url, options, queues)


def is_endpoint_queue(name: str) -> bool:
    return name.startswith((f"{QUEUE_PREDICT}.", f"{QUEUE_BATCH}."))


class TaskQueues(Queues):
    """Celery's queue table. An isolated endpoint's queue (``predict.NAME``, made on
    first use) is declared as its shared queue is (same exchange type and arguments);
    any other unknown queue as Celery would."""

    def new_missing(self, name: str) -> Queue:
        shared = dict.get(self, name.split(".", 1)[0]) if is_endpoint_queue(name) else None
        if shared is None:
            return super().new_missing(name)
        return Queue(
            name,
            Exchange(name, type=shared.exchange.type, durable=shared.exchange.durable),
            routing_key=name,
            durable=shared.durable,
            queue_arguments=dict(shared.queue_arguments) if shared.queue_arguments else None,
        )


class TaskAMQP(AMQP):
    queues_cls = TaskQueues
