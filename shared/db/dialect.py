"""INSERT ... ON CONFLICT for whichever database the session talks to."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def dialect_name(executor: Session | Connection) -> str:
    bind = executor if isinstance(executor, Connection) else executor.get_bind()
    return bind.dialect.name


def insert(executor: Session | Connection, table: Any) -> Any:
    """An insert construct with ``on_conflict_do_nothing``/``do_update`` for this dialect."""
    name = dialect_name(executor)
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"mlqueue supports PostgreSQL and SQLite, not {name}")
