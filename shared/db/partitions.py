"""The request log's daily partitions (PostgreSQL): made ahead by beat, on demand by a
write that finds none for its day, and dropped by `mlq db prune`.

``ml_request`` is partitioned by range on ``created_at``, one partition per UTC day,
named ``ml_request_pYYYYMMDD``. There is no default partition: a row for a day without
one fails, the writer makes the partition and writes again (``ensure_for``), so no row
ever lands where a later partition would have to be carved out of it. SQLite keeps one
plain table; every function here is a no-op there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from shared.db.dialect import dialect_name

log = logging.getLogger(__name__)

PARENT = "ml_request"
_NAME = re.compile(r"^ml_request_p(\d{8})$")
# Days made ahead of today by beat (and by the migration): a write never waits on DDL
# unless beat has been down this long.
DAYS_AHEAD = 7
# Serialises partition DDL between processes (workers and beat may all try at once).
_LOCK_KEY = 0x6D6C715F70617274  # "mlq_part"


def partition_name(day: date) -> str:
    return f"{PARENT}_p{day:%Y%m%d}"


def day_of(moment: datetime) -> date:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).date()


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def is_partitioned(executor: Session | Connection) -> bool:
    return dialect_name(executor) == "postgresql"


def existing_days(executor: Session | Connection) -> list[date]:
    """The days that have a partition, oldest first."""
    rows = executor.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:parent AS regclass)"
        ),
        {"parent": PARENT},
    ).scalars()
    days = []
    for name in rows:
        match = _NAME.match(name)
        if match:
            days.append(datetime.strptime(match[1], "%Y%m%d").date())
    return sorted(days)


def create_partitions(connection: Connection, days: Iterable[date]) -> list[date]:
    """Make the partitions of these days that do not exist; the days made. Runs in the
    caller's transaction, under a lock that other processes doing the same wait for."""
    wanted = sorted(set(days))
    if not wanted:
        return []
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    have = set(existing_days(connection))
    made = []
    for day in wanted:
        if day in have:
            continue
        start, end = day_start(day), day_start(day + timedelta(days=1))
        connection.execute(
            text(
                f"CREATE TABLE {partition_name(day)} PARTITION OF {PARENT} "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
        )
        made.append(day)
    if made:
        log.info("request log: made partitions for %s", ", ".join(map(str, made)))
    return made


# Days this process has seen a partition for: a write checks the catalog once a day.
_known: set[date] = set()


def ensure_days(days: Iterable[date]) -> list[date]:
    """Make missing partitions for these days, in a transaction of their own (call it
    while holding no lock on the table: the DDL waits for every transaction using it)."""
    from shared.db.engine import get_engine

    wanted = set(days) - _known
    if not wanted:
        return []
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        return []
    with engine.begin() as connection:
        made = create_partitions(connection, wanted)
    _known.update(wanted)
    return made


def forget(days: Iterable[date]) -> None:
    """Drop days from this process's cache (a write found no partition for them)."""
    _known.difference_update(days)


def ensure_ahead(today: date | None = None, days_ahead: int = DAYS_AHEAD) -> list[date]:
    """Partitions from yesterday to ``days_ahead`` days from today (what beat runs)."""
    today = today or datetime.now(UTC).date()
    return ensure_days(today + timedelta(days=n) for n in range(-1, days_ahead + 1))


def ensure_for(rows: Iterable[dict[str, Any]]) -> list[date]:
    """Make the partitions these rows need (after a write found none for their day)."""
    return ensure_days({day_of(row["created_at"]) for row in rows})


def is_missing_partition(error: BaseException) -> bool:
    """Whether a write failed because no partition holds a row's day."""
    import psycopg

    cause = getattr(error, "orig", error)
    return isinstance(cause, psycopg.errors.CheckViolation) and "no partition" in str(cause)
