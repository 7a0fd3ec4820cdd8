"""How the pieces are wired: Celery settings."""

from __future__ import annotations

import celeryconfig
from shared.celery_app import app
from shared.contracts import QUEUES, TASK_QUEUES


def test_only_json_travels_on_the_wire() -> None:
    assert app.conf.task_serializer == "json"
    assert app.conf.result_serializer == "json"
    assert set(app.conf.accept_content) == {"json"}


def test_delivery_is_at_least_once() -> None:
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_events_are_sent_for_flower() -> None:
    assert app.conf.worker_send_task_events is True
    assert app.conf.task_send_sent_event is True


def test_each_queue_has_its_own_route() -> None:
    queues = {q.name: q for q in celeryconfig.task_queues}
    assert set(queues) == set(QUEUES)
    assert len({(q.exchange.name, q.routing_key) for q in queues.values()}) == len(QUEUES)
    for task, queue in TASK_QUEUES.items():
        assert app.amqp.router.route({}, task)["queue"].name == queue
