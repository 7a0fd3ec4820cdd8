"""Batches from the client: send many records in chunks, follow their progress."""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from kombu.exceptions import EncodeError
from kombu.utils.json import dumps as json_dumps

from producer.base import ClientBase
from producer.batch_columns import BatchColumns
from producer.batch_input import BatchInputError, checked_chunks
from producer.batches import BatchSubmission, BatchSubmitError, UnknownBatchError
from producer.sending import send_task
from shared.contracts import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_ENDPOINT,
    MAX_BATCH_ID_LENGTH,
    MAX_ENDPOINT_LENGTH,
    QUEUE_BATCH,
    TASK_PREDICT_BATCH,
    chunk_task_id,
    key_problem,
)
from shared.db.batches import BatchProgress, batch_progress, create_batch, finish_submission
from shared.db.deliveries import forget_deliveries
from shared.db.engine import session_scope
from shared.db.external_ids import record_external_ids
from shared.db.ledger import (
    chunk_spans,
    describe_ranges,
    ledger_on,
    missing_ranges,
    pack,
    record_chunk,
    subtract,
)
from shared.db.models import as_utc, utcnow
from shared.errors import InvalidRequestError
from shared.queues import queue_for
from shared.settings import get_settings

log = logging.getLogger(__name__)


class BatchesMixin(ClientBase):
    def submit_batch(
        self,
        records: Any,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        status: str | None = None,
        version: str | None = None,
        batch_id: str | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        source: str | None = None,
        on_sent: Callable[[int], None] | None = None,
        id_column: str | None = None,
        ignore_columns: Sequence[str] = (),
        algorithm_id: int | None = None,
        resume: bool = False,
    ) -> BatchSubmission:
        """Send many records (a DataFrame or any iterable of records) in chunks.

        Returns the batch id and the request id of every record, in input order. The
        input is streamed: only one chunk is held at a time. ``on_sent`` is called with
        the number of records sent so far after every chunk. Submitting again with the
        same ``batch_id`` and input writes nothing twice. ``id_column`` names a field
        holding the caller's own id of each record: kept here, not sent, and given back
        by ``mlq batch results``; ``ignore_columns`` are dropped before sending.
        ``algorithm_id`` sends every record to that registered version (a replay).
        ``resume`` (with the batch id of a batch submitted before, and the same input)
        sends only the records at positions that have no row (``missing_positions``).
        """
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        batch_id = uuid.uuid4().hex if batch_id is None else batch_id
        for argument, problem in (
            ("batch_id", key_problem(batch_id, MAX_BATCH_ID_LENGTH)),
            ("endpoint", key_problem(endpoint, MAX_ENDPOINT_LENGTH, empty_ok=True)),
        ):
            if problem:
                raise InvalidRequestError(argument, problem)
        # Checked against MLQ_MAX_BATCH_RECORDS and MLQ_MAX_RECORD_BYTES chunk by chunk.
        columns = BatchColumns(id_column, ignore_columns)
        chunks = checked_chunks(records, chunk_size, batch_id, columns)
        # Read the first chunk before recording the batch: input that cannot be read, or
        # holds nothing, must not leave a batch that waits for records forever.
        first = next(chunks, None)
        if first is None:
            raise BatchInputError("the input holds no records")
        missing: list[tuple[int, int]] | None = None
        if resume:
            missing = self.missing_positions(batch_id)
        with session_scope() as session:
            create_batch(
                session,
                batch_id=batch_id,
                endpoint=endpoint,
                status=status,
                version=version,
                source=source,
            )
        sent = 0
        queue = queue_for(QUEUE_BATCH, endpoint)
        for chunk in itertools.chain([first], chunks):
            kwargs: dict[str, Any] = {
                "batch_id": batch_id,
                "endpoint": endpoint,
                "start": sent,
                "records": chunk,
                "status": status,
                "version": version,
            }
            if algorithm_id is not None:
                kwargs["algorithm_id"] = algorithm_id
            if id_column is not None:
                with session_scope() as session:
                    ids = columns.take_ids(len(chunk))
                    record_external_ids(session, batch_id=batch_id, start=sent, ids=ids)
            try:
                for part in _parts(kwargs, missing):
                    self._send_chunk(part, queue)
            except EncodeError:
                raise BatchSubmitError(
                    f"batch {batch_id}: sending stopped after {sent} records: "
                    f"{unencodable(chunk, start=sent)}; fix it and submit the same input "
                    f"again with batch id {batch_id} to finish it"
                ) from None
            except Exception as error:
                raise BatchSubmitError(
                    f"batch {batch_id}: sending stopped after {sent} records ({error}); "
                    f"records from position {sent} on were not sent: submit the same input "
                    f"again with batch id {batch_id} to finish it"
                ) from error
            log.info("batch %s: chunk %d+%d sent to %s", batch_id, sent, len(chunk), endpoint)
            sent += len(chunk)
            if on_sent:
                on_sent(sent)
        with session_scope() as session:
            finish_submission(session, batch_id=batch_id, total=sent)
        log.info("batch %s: all %d records sent", batch_id, sent)
        return BatchSubmission(batch_id, sent)

    def _send_chunk(self, kwargs: dict[str, Any], queue: str) -> None:
        """Note the chunk in the ledger (durable before it is sent), then send it."""
        batch_id, start = kwargs["batch_id"], kwargs["start"]
        task_id = chunk_task_id(batch_id, start)
        with session_scope() as session:
            if ledger_on():
                try:
                    payload = pack(kwargs)
                except (TypeError, ValueError) as error:  # what JSON cannot hold
                    raise EncodeError(error) from error
                record_chunk(
                    session,
                    batch_id=batch_id,
                    start=start,
                    count=len(kwargs["records"]),
                    payload=payload,
                )
            # A chunk sent again (a resubmission) is a new message: its crash count
            # starts afresh (workers/deliveries.py).
            forget_deliveries(session.connection(), task_id=task_id)
        send_task(self.app, TASK_PREDICT_BATCH, kwargs=kwargs, task_id=task_id, queue=queue)

    def missing_positions(self, batch_id: str) -> list[tuple[int, int]]:
        """Positions of a submitted batch that have no row, as (first, last) ranges."""
        with session_scope() as session:
            progress = batch_progress(session, batch_id=batch_id)
            if progress is None:
                raise UnknownBatchError(f"no batch with id {batch_id!r} was ever submitted")
            if progress.total is None:
                raise BatchSubmitError(
                    f"batch {batch_id} is still being submitted: submit it again without "
                    "--resume to send the rest"
                )
            return missing_ranges(session, batch_id=batch_id, total=progress.total)

    def batch_status(self, batch_id: str) -> dict[str, Any]:
        """Progress of a batch: total, done, ok, failed, rate (one database query).

        A batch submitted but with no new row for MLQ_RECONCILE_AFTER seconds is
        stalled: ``missing`` names its positions without a row, and ``lost`` those of
        them the ledger does not hold (the reconciler cannot send them again: resubmit
        with ``--resume``).
        """
        with session_scope() as session:
            progress = batch_progress(session, batch_id=batch_id)
            if progress is None:
                raise UnknownBatchError(f"no batch with id {batch_id!r} was ever submitted")
            status = progress.as_dict()
            if progress.total is not None and not progress.finished and _stalled(progress):
                missing = missing_ranges(session, batch_id=batch_id, total=progress.total)
                lost = subtract(missing, chunk_spans(session, batch_id=batch_id))
                status["missing"] = describe_ranges(missing)
                status["lost"] = describe_ranges(lost)
        return status


def _stalled(progress: BatchProgress) -> bool:
    last = progress.last_row_at or progress.submitted_at or progress.created_at
    quiet = (utcnow() - as_utc(last)).total_seconds()
    return quiet >= get_settings().reconcile_after_s


def _parts(
    kwargs: dict[str, Any], missing: list[tuple[int, int]] | None
) -> Iterator[dict[str, Any]]:
    """The chunk as it is, or (resuming) one message per run of its missing positions."""
    if missing is None:
        yield kwargs
        return
    start, records = kwargs["start"], kwargs["records"]
    stop = start + len(records)
    for first, last in missing:
        low, high = max(first, start), min(last + 1, stop)
        if low < high:
            yield {**kwargs, "start": low, "records": records[low - start : high - start]}


def unencodable(chunk: list[Any], *, start: int) -> str:
    """Which record of a chunk JSON cannot carry (a set, say): kombu's error names none."""
    for position, record in enumerate(chunk, start):
        try:
            json_dumps(record)
        except (TypeError, ValueError) as error:
            return f"record {position} cannot be sent as JSON ({error})"
    return "the chunk cannot be sent as JSON"
