"""One SQLAlchemy engine per process and database URL.

Connections must never cross a fork: a prefork worker's children each open their own
pool, so the engine is keyed by process id as well as URL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session

from shared.settings import get_settings

_engines: dict[tuple[int, str, bool], Engine] = {}


def make_engine(url: str, *, autocommit: bool = False) -> Engine:
    # No pool_pre_ping: it costs a round trip on every checkout. A connection that went
    # stale (the database restarted) fails its statement with OperationalError, the pool
    # discards it, and the task is retried (see workers/tasks.py).
    options: dict[str, Any] = {}
    if autocommit:
        options["isolation_level"] = "AUTOCOMMIT"
    if url.startswith("sqlite"):
        # Wait for another process's write lock instead of failing at once.
        options["connect_args"] = {"timeout": 30}
    elif url.startswith("postgresql"):
        # A server that does not answer fails the connection (OperationalError: the task
        # is retried) well before a task's time limit would end the task without a row.
        options["connect_args"] = {"connect_timeout": 10}
    engine = create_engine(url, **options)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
        if not autocommit:
            # pysqlite starts a transaction only at the first write, so a SAVEPOINT
            # issued before it would start (and its RELEASE commit) the transaction
            # instead of nesting in it. SQLAlchemy's documented remedy: BEGIN ourselves.
            event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN"))
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # see make_engine: we say when to BEGIN
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the producer polling results) go on while a worker writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def get_engine(url: str | None = None, *, autocommit: bool = False) -> Engine:
    url = url or get_settings().database_url
    key = (os.getpid(), url, autocommit)
    engine = _engines.get(key)
    if engine is None:
        engine = _engines[key] = make_engine(url, autocommit=autocommit)
    return engine


@contextmanager
def autocommit_connection(url: str | None = None) -> Iterator[Connection]:
    """A connection where each statement commits by itself: one round trip for a single
    INSERT instead of BEGIN, INSERT, COMMIT (the single-record path's hot spot)."""
    with get_engine(url, autocommit=True).connect() as connection:
        yield connection


def dispose_all() -> None:
    """Close this process's pools (before a fork, so no child inherits a connection)."""
    for (pid, _, _), engine in list(_engines.items()):
        if pid == os.getpid():
            engine.dispose()


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(url), expire_on_commit=False) as session, session.begin():
        yield session
