"""Operational failures said in one line, with the exit code every command shares.

A database that is down, a broker that cannot be reached, a schema not migrated, a
queue nobody consumes: each is something the person running ``mlq`` can act on, so it
is said as one line naming the service (password hidden) instead of a traceback.
``mlq --debug`` shows the traceback as well. An exception this module does not know is
a bug, and keeps its traceback.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError

from producer.consumers import NoConsumerError
from producer.sending import BrokerUnavailableError, unavailable
from shared.cli_output import (
    EXIT_FAILED,
    EXIT_NOT_FINISHED,
    EXIT_UNAVAILABLE,
    EXIT_UNKNOWN_ID,
)
from shared.errors import ConfigurationError, MlqError, UnknownRequestError

# SQLite reports a missing table or column as an OperationalError, PostgreSQL as a
# ProgrammingError: both mean a schema older than the code.
_SQLITE_SCHEMA_HINTS = ("no such table", "no such column")


@dataclass(frozen=True)
class Failure:
    exit_code: int
    code: str
    message: str


def explain(error: BaseException) -> Failure | None:
    """The one-line failure for an error, or None for one that is a bug."""
    if isinstance(error, UnknownRequestError):
        return Failure(EXIT_UNKNOWN_ID, error.code, error.message)
    if isinstance(error, NoConsumerError | BrokerUnavailableError):
        return Failure(EXIT_UNAVAILABLE, error.code, error.message)
    if isinstance(error, MlqError):
        # A batch cut short by an outage says how far it went; its exit code says why.
        cut_short = any(isinstance(cause, BrokerUnavailableError) for cause in _causes(error))
        return Failure(EXIT_UNAVAILABLE if cut_short else EXIT_FAILED, error.code, error.message)
    if isinstance(error, DBAPIError):
        return _database_failure(error)
    if isinstance(error, CeleryTimeoutError):
        drop_abandoned_result_noise()
        return Failure(
            EXIT_NOT_FINISHED,
            "timeout",
            "no answer from a worker in time; is one running? (celery -A workers worker)",
        )
    from shared.celery_app import app

    outage = unavailable(app, error)
    if outage is not None:
        return Failure(EXIT_UNAVAILABLE, outage.code, outage.message)
    return None


def _causes(error: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    cause = error.__cause__
    while cause is not None and len(found) < 10:
        found.append(cause)
        cause = cause.__cause__
    return found


def _database_failure(error: DBAPIError) -> Failure | None:
    from shared.db.migrate import require_current_schema
    from shared.settings import get_settings, redact_url

    reason = str(error.orig).strip().splitlines()[0] if str(error.orig).strip() else ""
    if isinstance(error, ProgrammingError) or any(h in reason for h in _SQLITE_SCHEMA_HINTS):
        try:
            require_current_schema()
        except ConfigurationError as stale:
            return Failure(EXIT_UNAVAILABLE, "schema", stale.message)
        except DBAPIError:
            pass
        else:
            return None  # the schema is current: a bug, shown with its traceback
    if isinstance(error, OperationalError | InterfaceError):
        where = redact_url(get_settings().database_url)
        return Failure(
            EXIT_UNAVAILABLE,
            "database_unavailable",
            f"cannot reach the database at {where} ({reason or type(error.orig).__name__})",
        )
    return None


def drop_abandoned_result_noise() -> None:
    """Silence the one report a timed-out wait leaves behind.

    An AsyncResult whose wait timed out stays subscribed in Celery's Redis result
    backend, which unsubscribes it when the object is collected: at interpreter
    shutdown, when redis-py can no longer import, and Python then prints "Exception
    ignored in AsyncResult.__del__" with a traceback. The subscription ends with the
    process anyway, so only that report is dropped; any other goes on as before.
    """
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if getattr(unraisable.object, "__qualname__", "") != "AsyncResult.__del__":
            previous(unraisable)

    sys.unraisablehook = hook
