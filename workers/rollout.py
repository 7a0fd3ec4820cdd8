"""Which models a worker serves, and new versions going live without a restart.

A worker bootstep. Before the pool forks, the worker's main process loads every model
of the endpoints it serves (``--endpoints``, or every endpoint that is not isolated) in
a serving status, so that its pool processes share them. Then, every
``MLQ_MODEL_POLL_SECONDS``, it compares that set with the registry: it loads versions
registered since, drops retired ones, and recycles its pool processes (each exits once
it is idle, in-flight tasks finish, and is forked again from the main process), so they
share the new models too. Until then a pool process asked for a model it lacks loads it
itself (``ModelStore.get``): no request fails for it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
from celery import bootsteps

from shared.contracts import QUEUE_BATCH, QUEUE_PREDICT, endpoint_queue
from shared.db.engine import dispose_all, session_scope
from shared.db.holdings import forget_worker, record_holdings
from shared.db.migrate import require_current_schema
from shared.db.models import SERVING_STATUSES
from shared.errors import MlqError
from shared.registry import AlgorithmInfo, isolated_endpoints, list_algorithms
from shared.settings import get_settings
from workers.runtime import STORE

log = logging.getLogger(__name__)

ENDPOINTS_OPTION = click.Option(
    ("--endpoints",),
    default=None,
    help="Serve only these endpoints (comma-separated) from their own queues "
    "(predict.<endpoint>, batch.<endpoint>); see `mlq models isolate`.",
)


def parse_endpoints(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def served_algorithms(endpoints: list[str]) -> list[AlgorithmInfo]:
    """The algorithms this worker should hold now."""
    with session_scope() as session:
        if endpoints:
            algorithms = list_algorithms(session, endpoints=endpoints)
        else:
            isolated = set(isolated_endpoints(session))
            algorithms = [a for a in list_algorithms(session) if a.endpoint not in isolated]
    return [a for a in algorithms if a.status in SERVING_STATUSES]


class ModelServing(bootsteps.StartStopStep):
    """Loads the worker's models before its pool forks, then follows the registry."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker: Any, endpoints: str | None = None, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        settings = get_settings()
        self.hostname = str(worker.hostname)
        self.endpoints = parse_endpoints(endpoints or settings.worker_endpoints)
        self.interval = settings.model_poll_s
        self.timer: Any = None
        for what, where in settings.describe().items():
            log.info("%s: %s", what, where)
        if self.endpoints:
            self._consume_endpoint_queues(worker)
        try:
            require_current_schema()
            self.sync()
        except Exception as error:  # whatever it is, a worker that cannot start must say so
            if isinstance(error, MlqError):
                log.critical("worker cannot start: %s", error)
            else:
                log.critical("worker cannot start", exc_info=True)
            # Celery swallows most exceptions of a bootstep's construction; SystemExit is
            # not swallowed, so a worker that cannot serve never starts taking tasks.
            sys.exit(f"mlqueue worker cannot start: {error}")
        finally:
            # The pool forks after this: no child may inherit a database connection.
            dispose_all()

    def _consume_endpoint_queues(self, worker: Any) -> None:
        """An endpoint-limited worker takes its endpoints' work from their own queues
        instead of the shared ones (which carry the other endpoints' work)."""
        queues = worker.app.amqp.queues
        for base in (QUEUE_PREDICT, QUEUE_BATCH):
            if base in queues.consume_from:
                queues.deselect([base])
                for endpoint in self.endpoints:
                    queues.select_add(endpoint_queue(base, endpoint))

    def sync(self) -> tuple[list[int], list[int]]:
        loaded, dropped = STORE.sync(served_algorithms(self.endpoints))
        with session_scope() as session:
            record_holdings(session, worker=self.hostname, algorithm_ids=STORE.held_ids())
        if not len(STORE):
            log.warning(
                "no model to serve yet (endpoints: %s); waiting for `mlq train` or "
                "`mlq models add`",
                ", ".join(self.endpoints) or "all",
            )
        return loaded, dropped

    def start(self, worker: Any) -> None:
        self.timer = worker.timer.call_repeatedly(self.interval, self.refresh, (worker,))

    def refresh(self, worker: Any) -> None:
        try:
            loaded, dropped = self.sync()
        except Exception as error:  # an outage: keep serving what is held, try again later
            log.warning("cannot compare the models held with the registry now: %s", error)
            return
        finally:
            dispose_all()
        if (loaded or dropped) and worker.pool is not None:
            log.info(
                "models changed (%d loaded, %d dropped): recycling pool processes so they "
                "share them",
                len(loaded),
                len(dropped),
            )
            worker.pool.restart()

    def stop(self, worker: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()
        try:
            with session_scope() as session:
                forget_worker(session, worker=self.hostname)
        except Exception:  # shutting down: the rows age out of `mlq models list` anyway
            log.debug("could not clear this worker's holdings", exc_info=True)
