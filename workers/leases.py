"""Leases on the messages a live worker holds, renewed every MLQ_LEASE_SECONDS.

With Redis, a message handed to a worker waits in the ``unacked`` hash until it is
acknowledged, indexed in ``unacked_index`` by the time it was handed out; kombu puts it
back on its queue once that time is MLQ_VISIBILITY_TIMEOUT old. A fixed timeout must
either exceed the longest task (an hour by default, so a dead worker's messages came
back after an hour) or risk running a long task twice. Instead the worker's main process
moves the index entry of every message it still holds (running or reserved) to now,
every MLQ_LEASE_SECONDS: a live worker's messages never come back, however long they
run, and a dead worker's come back within the visibility timeout (45 s by default).

The same thread notes the held task ids in ``worker_lease`` (PostgreSQL), which the
reconciler reads so that it never sends again what a live worker is running.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from celery import bootsteps
from celery.worker import state
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from shared.db.engine import connect_args
from shared.db.ledger import renew_leases
from shared.settings import get_settings

log = logging.getLogger(__name__)


def held_messages() -> list[tuple[str, str | None]]:
    """(task id, delivery tag) of every message this worker holds, running or reserved."""
    for _ in range(5):  # the consumer thread may change the sets while they are copied
        try:
            requests = list(state.reserved_requests) + list(state.active_requests)
            break
        except RuntimeError:
            time.sleep(0.01)
    else:
        return []
    held: dict[str, str | None] = {}
    for request in requests:
        message = getattr(request, "message", None)
        tag = getattr(message, "delivery_tag", None)
        held[str(request.id)] = None if tag is None else str(tag)
    return list(held.items())


class LeaseRenewal(bootsteps.StartStopStep):
    """A thread of the worker's main process that renews the leases of its messages."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        settings = get_settings()
        self.hostname = str(worker.hostname)
        self.interval = settings.lease_s
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        broker = settings.broker_url
        options = worker.app.conf.broker_transport_options or {}
        self.unacked_index = str(options.get("unacked_index_key", "unacked_index"))
        self.redis = redis.Redis.from_url(broker) if broker.startswith("redis") else None
        # Its own engine without a pool: no connection stays open across a fork.
        url = settings.database_url
        self.engine = create_engine(url, poolclass=NullPool, connect_args=connect_args(url))

    def start(self, worker: Any) -> None:
        self.thread = threading.Thread(target=self._run, name="mlq-leases", daemon=True)
        self.thread.start()

    def stop(self, worker: Any) -> None:
        self.stopping.set()

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.renew()
            except Exception as error:  # an outage: renew at the next tick
                log.warning("cannot renew the leases of held messages now: %s", error)

    def renew(self) -> int:
        held = held_messages()
        if not held:
            return 0
        tags = [tag for _, tag in held if tag is not None]
        if self.redis is not None and tags:
            # XX: only entries still there; a message acknowledged meanwhile stays gone.
            self.redis.zadd(self.unacked_index, dict.fromkeys(tags, time.time()), xx=True)
        with self.engine.begin() as connection:
            renew_leases(connection, worker=self.hostname, held=held)
        return len(held)
