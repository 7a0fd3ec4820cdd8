"""Reading and writing MLRequest rows, one per prediction, keyed by request id.

A row's key is (id, created_at), ``created_at`` being fixed per request before any
worker sees it (see MLRequest): a redelivered message writes the same key, which the
primary key refuses. A single record whose id a caller chose and sent again in a new
message has another ``created_at``; its write also looks for the id within a day of
it (``NEAR``), so that a caller's retry writes no second row either.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
import psycopg
from sqlalchemy import Connection, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from shared.db import partitions
from shared.db.dialect import dialect_name, insert
from shared.db.models import MLRequest
from shared.errors import TransientError

# How far from a single record's created_at its write looks for the same id.
NEAR = timedelta(days=1)

log = logging.getLogger(__name__)


def record_requests(session: Session | Connection, *, rows: Sequence[dict[str, Any]]) -> int:
    """Insert request rows; a row whose id exists already is left as it was.

    A redelivered message therefore writes nothing twice. Returns how many rows were new.
    """
    return len(inserted_ids(session, rows=rows))


_INSERT_NEW: dict[str, Any] = {}


def _insert_new_requests(executor: Session | Connection) -> Any:
    """One statement per dialect, built once: with the rows passed as parameters (not
    baked in with ``.values``) SQLAlchemy compiles it once, which saves 0.6 ms per
    single-record insert on PostgreSQL."""
    name = dialect_name(executor)
    if name not in _INSERT_NEW:
        _INSERT_NEW[name] = (
            insert(executor, MLRequest)
            .on_conflict_do_nothing(index_elements=["id", "created_at"])
            .returning(MLRequest.id)
        )
    return _INSERT_NEW[name]


def get_response(session: Session | Connection, *, request_id: str) -> dict[str, Any] | None:
    """The stored result of a request, or None when no row has it yet."""
    response = session.execute(
        select(MLRequest.response).where(MLRequest.id == request_id)
    ).scalar_one_or_none()
    return dict(response) if response is not None else None


# Columns a bulk write fills, in this order.
BULK_COLUMNS = (
    "id",
    "endpoint",
    "algorithm_id",
    "input",
    "response",
    "label",
    "probability",
    "value",
    "status",
    "error_code",
    "error_message",
    "latency_ms",
    "batch_id",
    "batch_position",
    "created_at",
    "ab_test_id",
    "ab_arm",
)


def existing_positions(
    session: Session,
    *,
    batch_id: str,
    start: int,
    stop: int,
    created_at: datetime | None = None,
) -> set[int]:
    """Positions in [start, stop) of a batch that have a row already (``created_at``:
    the batch's, which reads its one partition only)."""
    query = select(MLRequest.batch_position).where(
        MLRequest.batch_id == batch_id,
        MLRequest.batch_position >= start,
        MLRequest.batch_position < stop,
    )
    if created_at is not None:
        query = query.where(MLRequest.created_at == created_at)
    return {p for p in session.execute(query).scalars() if p is not None}


def copy_requests(session: Session, *, rows: Sequence[dict[str, Any]]) -> int:
    """Write new request rows in bulk; returns how many were new (``copied_ids``)."""
    return len(copied_ids(session, rows=rows))


def copied_ids(session: Session, *, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Write new request rows in bulk; the ids written now.

    On PostgreSQL: COPY into the partitioned table (the rows of a chunk all have their
    batch's ``created_at``, so they go to one partition), in a savepoint. The caller
    has left out rows it knows exist (``existing_positions``), so the COPY normally
    succeeds; if a key exists anyway (a redelivered message, the same chunk running
    twice at once), the primary key refuses the COPY, the savepoint rolls it back, and
    the rows go in again by ``INSERT ... ON CONFLICT DO NOTHING``: the new ones are
    written, none twice. Elsewhere: that insert straight away.
    """
    if not rows:
        return set()
    if dialect_name(session) != "postgresql":
        return inserted_ids(session, rows=rows)
    singles = [row for row in rows if row.get("batch_id") is None]
    if singles:  # a caller's id sent again: see the module's docstring
        near = near_ids(session, rows=singles)
        rows = [row for row in rows if row["id"] not in near or row.get("batch_id") is not None]
        if not rows:
            return set()
    return copied_tuples(session, [tuple(row[c] for c in BULK_COLUMNS) for row in rows])


def copied_tuples(session: Session, rows: Sequence[tuple[Any, ...]]) -> set[str]:
    """``copied_ids`` for rows given as tuples in BULK_COLUMNS order (what a batch
    chunk builds, skipping a dict per row)."""
    if not rows:
        return set()
    if dialect_name(session) != "postgresql":
        return inserted_ids(
            session, rows=[dict(zip(BULK_COLUMNS, row, strict=True)) for row in rows]
        )
    try:
        with session.begin_nested():
            _copy(session, rows)
    except psycopg.IntegrityError as error:
        log.info("COPY ml_request met an existing row: inserting %d rows one by one", len(rows))
        dicts = [dict(zip(BULK_COLUMNS, row, strict=True)) for row in rows]
        if partitions.is_missing_partition(error):
            # The session holds locks on the table: the partition is made before the
            # retried task opens its transaction (see ``ensure_partitions``).
            missing_day(dicts, error)
        return inserted_ids(session, rows=dicts)
    except psycopg.Error as error:
        # COPY runs on the driver's cursor: give its errors SQLAlchemy's classes, so an
        # outage (OperationalError) is retried like any other statement's.
        raise DBAPIError.instance("COPY ml_request", None, error, psycopg.Error) from error
    return {row[0] for row in rows}


def _copy(session: Session, rows: Sequence[tuple[Any, ...]]) -> None:
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    columns = ", ".join(BULK_COLUMNS)
    with cursor.copy(f"COPY ml_request ({columns}) FROM STDIN") as copy:
        copy.write(copy_text(rows))


# COPY's text format: a backslash, tab, newline or carriage return in a value is escaped.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_SPECIAL = re.compile(r"[\\\t\n\r]")
NULL = "\\N"


def _text(value: str | None) -> str:
    if value is None:
        return NULL
    return value.translate(_ESCAPES) if _SPECIAL.search(value) else value


def _json(value: Any) -> str:
    # orjson: a tenth of json.dumps's time. Its output has no raw tab, newline or
    # carriage return (JSON escapes them), only backslashes to double.
    text = orjson.dumps(value).decode()
    return text.replace("\\", "\\\\") if "\\" in text else text


def _number(value: Any) -> str:
    # repr: the shortest text that reads back as the same float (or int); PostgreSQL
    # reads Python's "nan" and "inf" too.
    if value is None:
        return NULL
    kind = type(value)
    return repr(value) if kind is float or kind is int else repr(float(value))


def copy_text(rows: Sequence[tuple[Any, ...]]) -> str:
    """The rows (tuples in BULK_COLUMNS order) as COPY text, built in one pass with no
    per-value type dispatch: psycopg's ``write_row`` adapts every value by its type,
    which was half of a chunk's write time. Values repeated down a chunk (endpoint,
    labels, times, the batch id) are formatted once."""
    seen: dict[Any, str] = {}

    def once(value: Any, format: Any) -> str:
        text = seen.get(value)
        if text is None:
            text = seen[value] = format(value)
        return text

    lines = [
        "\t".join(
            (
                _text(request_id),
                once(endpoint, _text),
                _number(algorithm_id),
                _json(record),
                _json(response),
                once(label, _text),
                _number(probability),
                _number(value),
                status,
                _text(error_code),
                _text(error_message),
                _number(latency_ms),
                once(batch_id, _text),
                _number(batch_position),
                once(created_at, _stamp),
                _number(ab_test_id),
                _text(ab_arm),
            )
        )
        for (
            request_id,
            endpoint,
            algorithm_id,
            record,
            response,
            label,
            probability,
            value,
            status,
            error_code,
            error_message,
            latency_ms,
            batch_id,
            batch_position,
            created_at,
            ab_test_id,
            ab_arm,
        ) in rows
    ]
    lines.append("")
    return "\n".join(lines)


def _stamp(moment: Any) -> str:
    return NULL if moment is None else str(moment.isoformat())


def inserted_ids(session: Session | Connection, *, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert request rows, leaving any whose key exists as it was; the ids written now.

    A single record (no batch) is also left out when its id has a row within ``NEAR``
    of its time: a caller that sent the same request id again.
    """
    if not rows:
        return set()
    singles = [row for row in rows if row.get("batch_id") is None]
    if singles:
        near = near_ids(session, rows=singles)
        rows = [row for row in rows if row["id"] not in near or row.get("batch_id") is not None]
        if not rows:
            return set()
    try:
        return set(session.execute(_insert_new_requests(session), list(rows)).scalars())
    except DBAPIError as error:
        if partitions.is_missing_partition(error):
            missing_day(rows, error)
        raise


def near_ids(session: Session | Connection, *, rows: Sequence[dict[str, Any]]) -> set[str]:
    """The ids of these rows that have a row within ``NEAR`` of the row's time."""
    times = [row["created_at"] for row in rows]
    query = select(MLRequest.id).where(
        MLRequest.id.in_([row["id"] for row in rows]),
        MLRequest.created_at >= min(times) - NEAR,
        MLRequest.created_at <= max(times) + NEAR,
    )
    return set(session.execute(query).scalars())


def ensure_partitions(rows: Sequence[dict[str, Any]]) -> None:
    """Make the partitions these rows need, if this process has not seen them yet. Call
    it before the transaction that writes the rows (DDL waits for every transaction on
    the table, the writer's own included)."""
    partitions.ensure_for(rows)


def missing_day(rows: Sequence[dict[str, Any]], error: BaseException) -> None:
    """A write found no partition for its rows' day (made since by nobody, or dropped):
    retried, after which ``ensure_partitions`` makes it."""
    days = {partitions.day_of(row["created_at"]) for row in rows}
    partitions.forget(days)
    raise TransientError(
        f"no request-log partition for {', '.join(map(str, sorted(days)))} yet"
    ) from error


def get_responses(
    session: Session | Connection, *, request_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The stored results of these requests, for those that have a row."""
    rows = session.execute(
        select(MLRequest.id, MLRequest.response).where(MLRequest.id.in_(list(request_ids)))
    )
    return {request_id: dict(response) for request_id, response in rows}
