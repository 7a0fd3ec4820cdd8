"""``mlq batch``: submit many records, follow their progress, export their results.

Usage::

    mlq batch submit records.csv --endpoint income_classifier --id-column row_id \\
        --ignore-columns income --wait
    mlq batch status BATCH_ID
    mlq batch results BATCH_ID -o results.csv
"""

from __future__ import annotations

import csv
import itertools
import json
import sys
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import click

from producer.cli.durations import DURATION
from shared.cli_output import (
    EXIT_FAILED,
    EXIT_NOT_FINISHED,
    EXIT_OK,
    emit,
    json_option,
    report_error,
    say,
    wants_json,
)
from shared.contracts import DEFAULT_CHUNK_SIZE, DEFAULT_ENDPOINT, QUEUE_BATCH

POLL_INTERVAL = 0.5


def exit_code_for_batch(status: Mapping[str, Any]) -> int:
    """Not done yet: 3 (whatever failed so far); done with failed records: 1; else 0."""
    if status["state"] != "done":
        return EXIT_NOT_FINISHED
    return EXIT_FAILED if status["failed"] else EXIT_OK


def _column_names(text: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def model_columns(endpoint: str, status: str | None, version: str | None) -> list[str] | None:
    """The input columns of the model the batch will get; refuses an endpoint (or a
    selection) the registry does not know, before a batch exists: a typo would otherwise
    give every record an error row."""
    from shared.db.engine import session_scope
    from shared.errors import UnknownEndpointError
    from shared.registry import input_columns, list_endpoints

    with session_scope() as session:
        known = list_endpoints(session)
        if endpoint not in known:
            listed = ", ".join(repr(name) for name in known) or "none yet: run `mlq train`"
            raise UnknownEndpointError(f"unknown endpoint {endpoint!r} (registered: {listed})")
        return input_columns(session, endpoint=endpoint, status=status, version=version)


@click.group()
def batch() -> None:
    """Batches: many records at once, scored in chunks."""


@batch.command("submit")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True)
@click.option("--status", default=None, help="Select by status (default: production).")
@click.option("--version", "algorithm_version", default=None, help="Select by version.")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: from the file name."
)
@click.option(
    "--id-column",
    default=None,
    help="A column holding your own id of each row: not sent to the model, given back by "
    "`mlq batch results` (column external_id).",
)
@click.option(
    "--ignore-columns",
    default=None,
    metavar="A,B",
    help="Columns to drop before sending (the true label, notes).",
)
@click.option("--chunk-size", default=DEFAULT_CHUNK_SIZE, show_default=True, type=click.IntRange(1))
@click.option(
    "--batch-id",
    default=None,
    help="Use this batch id: an existing batch is resumed (only records without a row are "
    "scored), a new one is created.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="With --batch-id of a submitted batch and the same file: send only the records "
    "at positions that have no row (what `mlq batch status` names as missing or lost).",
)
@click.option("--wait", is_flag=True, help="Show a progress bar until every record is scored.")
@click.option(
    "--timeout", type=DURATION, default="1h", show_default=True, help="How long --wait waits."
)
@json_option
def submit(
    path: Path,
    endpoint: str,
    status: str | None,
    algorithm_version: str | None,
    fmt: str | None,
    id_column: str | None,
    ignore_columns: str | None,
    chunk_size: int,
    batch_id: str | None,
    resume: bool,
    wait: bool,
    timeout: timedelta,
) -> None:
    """Submit a CSV (with a header) or JSON Lines file; print the batch id at once.

    Checked before anything is sent: the endpoint exists; a CSV file is read once
    whole (syntax, row widths, the named columns; an error names its line). Then it is
    streamed, never loaded whole. With --json, the id goes to stderr and stdout gets
    the batch's status once sent (with --wait, once done or timed out).

    Exits 0 when sent (with --wait: every record OK), 1 when some failed, 3 when not
    done within --timeout, 5 when no worker consumes the batch queue.
    """
    import uuid

    from producer.batch_columns import BatchColumns
    from producer.batch_input import (
        BatchInputError,
        check_header,
        detect_format,
        file_header,
        open_records,
    )
    from producer.client import Client

    ignored = _column_names(ignore_columns)
    columns = BatchColumns(id_column, ignored)
    handle, records = open_records(path, fmt, columns=columns)
    with handle:
        expected = model_columns(endpoint, status, algorithm_version)
        if expected is not None and (fmt or detect_format(path)) == "csv":
            check_header(file_header(path), expected, ignored=columns.not_sent)
        # Read the first record before printing an id: an empty file fails here.
        first = next(records, None)
        if first is None:
            raise BatchInputError(f"{path} holds no records")
        batch_id = batch_id or uuid.uuid4().hex
        if wants_json():
            say(f"batch {batch_id}")
        else:
            click.echo(batch_id)
            sys.stdout.flush()
        started = time.monotonic()
        client = Client()
        submission = client.submit_batch(
            itertools.chain([first], records),
            endpoint=endpoint,
            status=status,
            version=algorithm_version,
            batch_id=batch_id,
            chunk_size=chunk_size,
            source=str(path),
            on_sent=_show_sent,
            id_column=id_column,
            ignore_columns=ignored,
            resume=resume,
        )
    say(
        f"\rsent {submission.total} records in {time.monotonic() - started:.1f}s (batch {batch_id})"
    )
    if not wait:
        emit(client.batch_status(batch_id), "")
        return
    final = wait_for_batch(batch_id, submission.total, timeout.total_seconds())
    emit(final)
    sys.exit(exit_code_for_batch(final))


def _show_sent(sent: int) -> None:
    # On a terminal the count rewrites itself; in a log, one line per chunk.
    if sys.stderr.isatty():
        click.echo(f"\rsending: {sent} records", nl=False, err=True)
    else:
        say(f"sent {sent} records")


def wait_for_batch(batch_id: str, total: int, timeout: float) -> dict[str, Any]:
    """Poll the database (one query per poll) with a progress bar until all are scored.

    While no record has a row yet, asks once whether any worker consumes the batch
    queue (producer.consumers), so a missing worker is named instead of waited out.
    """
    from producer.client import Client
    from producer.consumers import FIRST_LOOK_S, require_consumer

    client = Client()
    started = time.monotonic()
    asked = False
    status = client.batch_status(batch_id)
    with click.progressbar(
        length=total, label="scoring", file=sys.stderr, show_pos=True, show_eta=True
    ) as bar:
        while True:
            bar.update(status["done"] - bar.pos)
            waited = time.monotonic() - started
            if status["state"] == "done" or waited >= timeout:
                return status
            if not asked and not status["done"] and waited >= FIRST_LOOK_S:
                require_consumer(client.app, QUEUE_BATCH)
                asked = True
            time.sleep(POLL_INTERVAL)
            status = client.batch_status(batch_id)


@batch.command("status")
@click.argument("batch_id")
@json_option
def status_command(batch_id: str) -> None:
    """Total, done, ok, failed and rate of a batch.

    A batch with no new row for MLQ_RECONCILE_AFTER seconds also lists ``missing``
    positions (no row yet) and ``lost`` ones (no row, and not in the ledger, so the
    reconciler cannot send them again: `mlq batch submit FILE --batch-id ID --resume`).

    Exits 0 when done with every record OK, 1 when done with failed records, 3 while
    it is being submitted or scored, 4 for an unknown batch id.
    """
    from producer.client import Client

    status = Client().batch_status(batch_id)
    emit(status)
    if status.get("lost"):
        say(
            f"positions {status['lost']} are lost (no row, and not in the ledger): run "
            f"`mlq batch submit FILE --batch-id {batch_id} --resume` with the same file"
        )
    sys.exit(exit_code_for_batch(status))


@batch.command("results")
@click.argument("batch_id")
@click.option(
    "-o", "--output", type=click.File("w"), default="-", help="Write to this file, not stdout."
)
@json_option
def results(batch_id: str, output: IO[str]) -> None:
    """One line per input record, in input order: CSV, or with --json one JSON array.

    Columns: position, external_id (your id, from --id-column), request_id, status (OK,
    ERROR, or QUEUED when not scored yet), label, probability, algorithm, version, error.
    Exits 3 (and writes nothing) while the batch is still being submitted; 3 too when
    some records are still QUEUED, 1 when some failed.
    """
    from producer.client import Client
    from shared.db.batches import RESULT_COLUMNS, iter_batch_results
    from shared.db.engine import session_scope

    status = Client().batch_status(batch_id)
    if status["total"] is None:
        report_error(
            "not_finished",
            f"batch {batch_id} is still being submitted ({status['done']} records scored "
            "so far): try again once `mlq batch status` says running or done",
        )
        sys.exit(EXIT_NOT_FINISHED)
    with session_scope() as session:
        rows = iter_batch_results(session, batch_id=batch_id, total=status["total"])
        if wants_json():
            _write_json_array(output, (dict(zip(RESULT_COLUMNS, row, strict=True)) for row in rows))
        else:
            writer = csv.writer(output)
            writer.writerow(RESULT_COLUMNS)
            writer.writerows(rows)
    if output.name != "<stdout>":
        say(f"wrote {status['total']} records to {output.name}")
    sys.exit(exit_code_for_batch(status))


def _write_json_array(output: IO[str], items: Any) -> None:
    """One JSON array, written item by item: a batch of millions is never held whole."""
    output.write("[")
    for index, item in enumerate(items):
        output.write(",\n" if index else "\n")
        output.write(json.dumps(item, default=str))
    output.write("\n]\n")
