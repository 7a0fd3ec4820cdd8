"""Queue declarations and transport options by broker (shared/broker.py)."""

from __future__ import annotations

import pytest
from celery import Celery
from celery.utils.quorum_queues import detect_quorum_queues

from shared.broker import DEAD_LETTER, broker_options, dead_letter_queue
from shared.contracts import QUEUES
from shared.errors import ConfigurationError
from shared.settings import Settings

AMQP = "amqp://guest:guest@127.0.0.1:5672//"
REDIS = "redis://127.0.0.1:6379/0"


def settings(**values: object) -> Settings:
    return Settings(broker_url=REDIS, **values)  # type: ignore[arg-type]


def test_on_redis_queues_take_no_arguments_and_messages_come_back_after_a_timeout() -> None:
    options = broker_options(settings(MLQ_VISIBILITY_TIMEOUT=120), REDIS)
    assert [q.name for q in options.task_queues] == list(QUEUES)
    for queue in options.task_queues:
        assert queue.exchange.type == "direct" and not queue.queue_arguments
    assert options.transport_options["visibility_timeout"] == 120
    assert "confirm_publish" not in options.transport_options


def test_on_rabbitmq_task_queues_are_quorum_queues_with_a_delivery_limit_and_dead_letters() -> None:
    options = broker_options(settings(), AMQP)
    for queue in options.task_queues:
        assert queue.durable
        assert queue.exchange.type == "topic"  # native delayed delivery routes through it
        assert queue.queue_arguments == {
            "x-queue-type": "quorum",
            "x-delivery-limit": 5,  # MLQ_MAX_DELIVERIES (3) + 2: the worker's bound first
            "x-dead-letter-exchange": DEAD_LETTER,
        }
    assert options.transport_options["confirm_publish"] is True
    dead = dead_letter_queue()
    assert dead.exchange.name == DEAD_LETTER and dead.exchange.type == "fanout"
    assert dead.queue_arguments == {"x-queue-type": "quorum"}  # no limit, no dead letters


def test_celery_sees_the_quorum_queues_and_declares_endpoint_queues_alike() -> None:
    app = Celery("probe", amqp="shared.broker:TaskAMQP")
    app.config_from_object("celeryconfig")
    app.conf.update(broker_options(settings(broker_delivery_limit=7), AMQP).as_celery())
    assert detect_quorum_queues(app, "amqp")[0]  # so no global QoS
    assert app.conf.worker_detect_quorum_queues
    isolated = app.amqp.queues["predict.my_model"]  # made on first use
    assert isolated.exchange.name == "predict.my_model"
    assert isolated.exchange.type == "topic"
    assert isolated.queue_arguments == {
        "x-queue-type": "quorum",
        "x-delivery-limit": 7,
        "x-dead-letter-exchange": DEAD_LETTER,
    }
    private = app.amqp.queues["worker.tests-1234"]  # a worker's own readiness queue
    assert not private.queue_arguments


def test_the_brokers_limit_may_not_undercut_the_workers_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLQ_MAX_DELIVERIES", "4")
    monkeypatch.setenv("MLQ_BROKER_DELIVERY_LIMIT", "3")
    with pytest.raises(ConfigurationError, match="MLQ_BROKER_DELIVERY_LIMIT"):
        Settings.from_env()
    monkeypatch.setenv("MLQ_BROKER_DELIVERY_LIMIT", "4")
    assert Settings.from_env().broker_delivery_limit == 4
