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
    else:
        options["connect_args"] = connect_args(url)
    engine = create_engine(url, **options)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
        if not autocommit:
            # pysqlite starts a transaction only at the first write, so a SAVEPOINT
            # issued before it would start (and its RELEASE commit) the transaction
            # instead of nesting in it. SQLAlchemy's documented remedy: BEGIN ourselves.
            event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN"))
    return engine


def connect_args(url: str) -> dict[str, Any]:
    """The driver's connection options for a database URL.

    PostgreSQL: a server that does not answer fails the connection attempt after 10 s;
    a statement that runs past MLQ_DB_STATEMENT_TIMEOUT (a lock wait, say) is cancelled
    by the server; TCP keepalives find a server gone silent mid-query within about
    3 x MLQ_DB_KEEPALIVE s. Each ends in OperationalError, and the task is retried,
    well before a time limit would stop it.
    """
    if url.startswith("sqlite"):
        return {"timeout": 30}
    if not url.startswith("postgresql"):
        return {}
    settings = get_settings()
    keepalive = settings.db_keepalive_s
    args: dict[str, Any] = {
        "connect_timeout": 10,
        "keepalives": 1,
        "keepalives_idle": keepalive,
        "keepalives_interval": max(1, keepalive // 3),
        "keepalives_count": 3,
        # Data sent but not acknowledged for this long also ends the connection.
        "tcp_user_timeout": 3 * keepalive * 1000,
    }
    if settings.db_statement_timeout_s:
        args["options"] = f"-c statement_timeout={int(settings.db_statement_timeout_s * 1000)}"
    return args


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
