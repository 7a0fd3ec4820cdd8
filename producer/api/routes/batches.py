"""Batches: upload CSV or JSON Lines (streamed), read status, download results in order."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import Iterator
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response, StreamingResponse

from producer.api.auth import require
from producer.api.bodies import media_type, unsupported
from producer.api.metrics import BATCH_RECORDS
from producer.api.problems import Problem
from producer.api.routes.common import ERRORS, json_response
from producer.api.schemas import BatchStatus
from producer.api.uploads import text_stream
from producer.batch_columns import BatchColumns
from producer.batch_input import check_header, csv_records, jsonl_records
from producer.batches import BatchInputError
from producer.client import Client
from shared.contracts import DEFAULT_CHUNK_SIZE, MAX_BATCH_ID_LENGTH
from shared.db.batches import RESULT_COLUMNS, iter_batch_results
from shared.db.engine import session_scope
from shared.errors import UnknownEndpointError
from shared.registry import input_columns, list_endpoints
from shared.settings import get_settings

router = APIRouter(tags=["batches"], responses=ERRORS, dependencies=[Depends(require("predict"))])

CSV_TYPES = ("text/csv", "application/csv")
JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/json-lines")
# Results are written this many rows at a time (one hop to the thread that reads them).
ROWS_PER_WRITE = 2000


def _model_columns(endpoint: str, status: str | None, version: str | None) -> list[str] | None:
    """As `mlq batch submit`: an unknown endpoint or selection is refused before a batch
    exists; the model's input columns, to check a CSV header against."""
    with session_scope() as session:
        if endpoint not in list_endpoints(session):
            raise UnknownEndpointError(f"unknown endpoint {endpoint[:200]!r}")
        return input_columns(session, endpoint=endpoint, status=status, version=version)


@router.post(
    "/v1/endpoints/{endpoint}/batches",
    status_code=202,
    summary="Upload a batch (CSV or JSON Lines, streamed)",
    responses={202: {"model": BatchStatus}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def upload(
    request: Request,
    endpoint: str = Path(max_length=128),
    status: str | None = Query(None, max_length=128),
    version: str | None = Query(None, max_length=128),
    id_column: str | None = Query(None, max_length=256, description="Your row id column"),
    ignore_columns: str | None = Query(None, max_length=4096, description="Columns to drop: A,B"),
    batch_id: str | None = Query(
        None, min_length=1, max_length=MAX_BATCH_ID_LENGTH, description="Resume this batch"
    ),
    chunk_size: int = Query(DEFAULT_CHUNK_SIZE, ge=1, le=50_000),
) -> Response:
    """The body is read as it arrives and sent in chunks; a CSV header is checked against
    the model's columns before a batch exists (missing, misspelt and extra columns
    named). Answers once every record is sent, with the batch's status and link."""
    kind = media_type(request)
    if kind not in CSV_TYPES + JSONL_TYPES:
        raise unsupported(kind, ("text/csv", "application/x-ndjson"))
    ignored = tuple(n.strip() for n in (ignore_columns or "").split(",") if n.strip())
    expected = await asyncio.to_thread(_model_columns, endpoint, status, version)
    columns = BatchColumns(id_column, ignored)
    batch_id = batch_id or uuid.uuid4().hex
    settings = get_settings()
    # A CSV line may hold a record written verbosely; a bound all the same.
    handle = text_stream(
        request.stream(), asyncio.get_running_loop(), max_line=4 * settings.max_record_bytes
    )
    sent = 0

    def on_sent(count: int) -> None:
        nonlocal sent
        sent = count

    def check(header: list[str]) -> None:
        columns.check(header, "the CSV header")
        if expected is not None:
            check_header(header, expected, ignored=columns.not_sent)

    records: Iterator[Any]
    if kind in CSV_TYPES:
        text = [id_column] if id_column is not None else []
        records = csv_records(handle, name="the upload", text_columns=text, check=check)
    else:
        records = jsonl_records(handle)
    client = Client(request.app.state.celery)
    try:
        submission = await asyncio.to_thread(
            client.submit_batch,
            records,
            endpoint=endpoint,
            status=status,
            version=version,
            batch_id=batch_id,
            chunk_size=chunk_size,
            source="HTTP upload",
            on_sent=on_sent,
            id_column=id_column,
            ignore_columns=ignored,
        )
    except BatchInputError as error:
        if not sent:
            raise Problem.of(error) from None
        raise Problem(
            422,
            error.code,
            f"batch {batch_id}: {error.message}; sending stopped after {sent} records: fix "
            f"the input and upload it again with ?batch_id={batch_id} to finish the batch",
            batch_id=batch_id,
            sent=sent,
        ) from None
    BATCH_RECORDS.observe(submission.total)
    status_doc = await asyncio.to_thread(client.batch_status, batch_id)
    return json_response(status_doc, 202, {"Location": f"/v1/batches/{batch_id}"})


@router.get(
    "/v1/batches/{batch_id}",
    summary="A batch's progress",
    responses={200: {"model": BatchStatus}},
)
async def status(
    request: Request, batch_id: str = Path(min_length=1, max_length=MAX_BATCH_ID_LENGTH)
) -> Response:
    """Total, done, ok, failed, rate and state (submitting, running, done)."""
    client = Client(request.app.state.celery)
    return json_response(await asyncio.to_thread(client.batch_status, batch_id))


@router.get(
    "/v1/batches/{batch_id}/results",
    summary="A batch's results, one line per record in input order (streamed)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
            "description": "Columns: " + ", ".join(RESULT_COLUMNS),
        }
    },
)
async def results(
    request: Request,
    batch_id: str = Path(min_length=1, max_length=MAX_BATCH_ID_LENGTH),
    format: Literal["csv", "jsonl"] | None = Query(
        None, description="Default: from the Accept header, else csv"
    ),
) -> Response:
    """Records not scored yet say QUEUED; 409 while the batch is still being uploaded."""
    client = Client(request.app.state.celery)
    progress = await asyncio.to_thread(client.batch_status, batch_id)
    if progress["total"] is None:
        raise Problem(
            409,
            "not_finished",
            f"batch {batch_id} is still being submitted ({progress['done']} records scored "
            "so far): try again once its state is running or done",
        )
    wanted = format or ("jsonl" if "ndjson" in request.headers.get("accept", "") else "csv")
    media = "text/csv" if wanted == "csv" else "application/x-ndjson"
    return StreamingResponse(_lines(batch_id, progress["total"], wanted), media_type=media)


def _lines(batch_id: str, total: int, fmt: str) -> Iterator[bytes]:
    """Blocks of lines; run by Starlette in a thread, one block per hop."""
    with session_scope() as session:
        rows = iter_batch_results(session, batch_id=batch_id, total=total)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        if fmt == "csv":
            writer.writerow(RESULT_COLUMNS)
        block: list[bytes] = []
        for count, row in enumerate(rows, 1):
            if fmt == "csv":
                writer.writerow(row)
            else:
                block.append(orjson.dumps(dict(zip(RESULT_COLUMNS, row, strict=True))) + b"\n")
            if count % ROWS_PER_WRITE == 0:
                yield _drain(buffer, block)
        yield _drain(buffer, block)


def _drain(buffer: io.StringIO, block: list[bytes]) -> bytes:
    data = buffer.getvalue().encode() + b"".join(block)
    buffer.seek(0)
    buffer.truncate()
    block.clear()
    return data
