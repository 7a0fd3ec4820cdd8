"""What every part of the client shares: the Celery app it sends through."""

from __future__ import annotations

from celery import Celery


class ClientBase:
    app: Celery
    # Ids this client sent recently: their results are waited for without first asking
    # the backend whether the id exists.
    _issued: dict[str, None]
