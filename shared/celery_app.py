"""The one Celery application, configured from ``celeryconfig``. Producers use it to send
tasks by name; ``workers`` registers the tasks on it."""

from celery import Celery

from shared.wire import register_bounded_json

register_bounded_json()
# Isolated endpoints' queues are declared as the shared ones are (shared/broker.py).
app = Celery("mlqueue", amqp="shared.broker:TaskAMQP")
app.config_from_object("celeryconfig")
