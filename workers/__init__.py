"""The mlqueue worker: ``celery -A workers worker``.

Models are loaded once in the parent process, after logging is set up and before the
prefork pool starts (``celeryd_after_setup``), so children share them; each child
opens its own database connections.
"""

import logging
import sys

from celery import signals

from shared.celery_app import app
from shared.errors import MlqError
from workers import tasks
from workers.runtime import STORE
from workers.startup import prepare_worker

__all__ = ["app", "tasks"]

log = logging.getLogger(__name__)


@signals.celeryd_after_setup.connect
def _prepare(sender: str = "worker", **_: object) -> None:
    try:
        prepare_worker(STORE, hostname=sender)
    except Exception as error:  # whatever it is, a worker without its models must not serve
        if isinstance(error, MlqError):
            log.critical("worker cannot start: %s", error)
        else:
            log.critical("worker cannot start", exc_info=True)
        # Celery logs and swallows exceptions from signal handlers; SystemExit is not
        # swallowed, so a worker without its models never starts taking tasks.
        sys.exit(f"mlqueue worker cannot start: {error}")
