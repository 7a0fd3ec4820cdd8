"""Celery settings, in Celery's lowercase keys, built from ``shared.settings``.

Nothing here is read from the environment directly: every value comes from the one
settings object, so producers and workers always agree.
"""

import math

from shared.broker import broker_options
from shared.contracts import (
    QUEUE_CONTROL,
    QUEUE_PREDICT,
    TASK_AB_EVALUATE,
    TASK_PARTITIONS,
    TASK_QUEUES,
    TASK_RECONCILE,
)
from shared.embedded_broker import TRANSPORT_PATH
from shared.settings import get_settings

_settings = get_settings()

broker_url = _settings.broker_url
result_backend = _settings.result_backend
broker_connection_retry_on_startup = True

# Redis or RabbitMQ: queues and transport options by broker (shared/broker.py).
_broker = broker_options(_settings)
if _settings.broker_is_embedded:
    broker_transport = TRANSPORT_PATH
    # Passed to create_engine by kombu: wait for SQLite's write lock instead of failing.
    broker_transport_options = {"connect_args": {"timeout": 30}}
else:
    broker_transport_options = _broker.transport_options
# RabbitMQ: quorum queues refuse a global prefetch; Celery then sets it per consumer.
worker_detect_quorum_queues = True
if result_backend.startswith("db+sqlite"):
    database_engine_options = {"connect_args": {"timeout": 30}}

# A producer that cannot reach the broker or the Redis result backend tries again every
# 0.5 s, MLQ_SEND_TIMEOUT / 0.5 times, then fails with an error saying what was sent
# (producer/sending.py). A refused connection fails at once, so that takes about
# MLQ_SEND_TIMEOUT; a host that does not answer costs up to 4 s per attempt more.
_send_retry_policy = {
    "max_retries": max(1, math.ceil(_settings.send_timeout_s / 0.5)),
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 0.5,
}
task_publish_retry_policy = _send_retry_policy
broker_connection_timeout = max(0.5, min(4.0, _settings.send_timeout_s))
if result_backend.startswith("redis"):
    result_backend_transport_options = {"retry_policy": _send_retry_policy}
    redis_socket_connect_timeout = 4

# Safe serializers only: a pickled message is refused, never executed.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
result_accept_content = ["json"]

# At-least-once delivery: a message is acknowledged only after its task finished, and
# re-queued when the worker process running it dies. Writes are idempotent on the
# request id, so a redelivery never makes a second row.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
# New model versions reach the pool processes by recycling them (workers/rollout.py):
# each exits once idle and is forked again from the main process, which holds the models.
worker_pool_restarts = True
task_time_limit = _settings.task_time_limit_s
task_soft_time_limit = _settings.soft_time_limit_s
result_expires = _settings.result_expires_s

# One exchange per queue, so a message reaches exactly the queue it is routed to (on
# RabbitMQ: quorum queues with a delivery limit and a dead-letter queue).
task_queues = _broker.task_queues
task_default_queue = QUEUE_PREDICT
task_routes = {name: {"queue": queue} for name, queue in TASK_QUEUES.items()}

# Events for Flower: sent events let queued tasks show before a worker takes them.
worker_send_task_events = True
task_send_sent_event = True
task_track_started = True

# Celery beat (`celery -A workers beat`) evaluates running A/B tests and ends those
# decided (conclusive, a guardrail breached, or their time up). Ending is idempotent, so
# two beats, or a beat racing `mlq ab stop`, still end a test once.
beat_schedule = {
    "evaluate-ab-tests": {
        "task": TASK_AB_EVALUATE,
        "schedule": max(_settings.ab_check_s, 0.5),
        "options": {"queue": QUEUE_CONTROL, "expires": max(_settings.ab_check_s, 0.5)},
    },
    # Accepted work with no row that is neither queued nor held by a live worker is sent
    # again (workers/reconciler.py). Idempotent, so two beats do no harm.
    "reconcile-accepted-work": {
        "task": TASK_RECONCILE,
        "schedule": _settings.reconcile_every_s,
        "options": {"queue": QUEUE_CONTROL, "expires": _settings.reconcile_every_s},
    },
    # The request log's daily partitions, made a week ahead (shared/db/partitions.py):
    # a write never waits on DDL while beat runs.
    "request-log-partitions": {
        "task": TASK_PARTITIONS,
        "schedule": 3600.0,
        "options": {"queue": QUEUE_CONTROL, "expires": 3600.0},
    },
}
beat_schedule_filename = str(_settings.home / "celerybeat-schedule")
