"""The Python client: enqueue predictions and batches, give feedback, run A/B tests,
and read results by request id.

Usage::

    from producer import Client

    client = Client()
    request_id = client.predict(record, endpoint="income_classifier")
    print(client.result(request_id, timeout=10))

Each kind of work lives in its own module; ``Client`` puts them together.
"""

from __future__ import annotations

from celery import Celery

from producer.ab import ABTestsMixin
from producer.batch_submit import BatchesMixin
from producer.feedback import FeedbackMixin
from producer.predictions import PredictionsMixin
from shared.celery_app import app as default_app


# ABTestsMixin builds on BatchesMixin (a replay is sent as a batch), so it comes first.
class Client(PredictionsMixin, ABTestsMixin, BatchesMixin, FeedbackMixin):
    """Sends work to mlqueue's workers and reads what they recorded."""

    def __init__(self, app: Celery | None = None) -> None:
        self.app = app or default_app
        self._issued = {}
