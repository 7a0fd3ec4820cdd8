"""``mlq batch``: submit many records, follow their progress, export their results.

Usage::

    mlq batch submit records.csv --endpoint income_classifier --wait
    mlq batch status BATCH_ID
    mlq batch results BATCH_ID -o results.csv
"""

from __future__ import annotations

import csv
import itertools
import sys
import time
from pathlib import Path
from typing import IO, Any

import click

from producer.cli.output import EXIT_FAILED, EXIT_NOT_FINISHED, emit
from shared.contracts import DEFAULT_CHUNK_SIZE, DEFAULT_ENDPOINT

POLL_INTERVAL = 0.5


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
@click.option("--chunk-size", default=DEFAULT_CHUNK_SIZE, show_default=True, type=click.IntRange(1))
@click.option(
    "--batch-id",
    default=None,
    help="Use this batch id: an existing batch is resumed (only records without a row are "
    "scored), a new one is created.",
)
@click.option("--wait", is_flag=True, help="Show a progress bar until every record is scored.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait with --wait.")
def submit(
    path: Path,
    endpoint: str,
    status: str | None,
    algorithm_version: str | None,
    fmt: str | None,
    chunk_size: int,
    batch_id: str | None,
    wait: bool,
    timeout: float,
) -> None:
    """Submit a CSV (with a header) or JSON Lines file; print the batch id at once.

    The file is streamed, never loaded whole.
    """
    import uuid

    from producer.batch_input import BatchInputError, open_records
    from producer.client import Client

    handle, records = open_records(path, fmt)
    # Read the first record before printing an id: an unreadable or empty file fails here.
    first = next(records, None)
    if first is None:
        handle.close()
        raise BatchInputError(f"{path} holds no records")
    records = itertools.chain([first], records)
    batch_id = batch_id or uuid.uuid4().hex
    click.echo(batch_id)
    sys.stdout.flush()
    started = time.monotonic()
    with handle:
        submission = Client().submit_batch(
            records,
            endpoint=endpoint,
            status=status,
            version=algorithm_version,
            batch_id=batch_id,
            chunk_size=chunk_size,
            source=str(path),
            on_sent=_show_sent,
        )
    click.echo(
        f"\rsent {submission.total} records in {time.monotonic() - started:.1f}s "
        f"(batch {batch_id})",
        err=True,
    )
    if wait:
        final = wait_for_batch(batch_id, submission.total, timeout)
        emit(final)
        if final["state"] != "done":
            sys.exit(EXIT_NOT_FINISHED)
        if final["failed"]:
            sys.exit(EXIT_FAILED)


def _show_sent(sent: int) -> None:
    # On a terminal the count rewrites itself; in a log, one line per chunk.
    if sys.stderr.isatty():
        click.echo(f"\rsending: {sent} records", nl=False, err=True)
    else:
        click.echo(f"sent {sent} records", err=True)


def wait_for_batch(batch_id: str, total: int, timeout: float) -> dict[str, Any]:
    """Poll the database (one query per poll) with a progress bar until all are scored."""
    from producer.client import Client

    client = Client()
    deadline = time.monotonic() + timeout
    status = client.batch_status(batch_id)
    with click.progressbar(
        length=total, label="scoring", file=sys.stderr, show_pos=True, show_eta=True
    ) as bar:
        while True:
            bar.update(status["done"] - bar.pos)
            if status["state"] == "done" or time.monotonic() >= deadline:
                return status
            time.sleep(POLL_INTERVAL)
            status = client.batch_status(batch_id)


@batch.command("status")
@click.argument("batch_id")
def status_command(batch_id: str) -> None:
    """Total, done, ok, failed and rate of a batch."""
    from producer.client import Client

    emit(Client().batch_status(batch_id))


@batch.command("results")
@click.argument("batch_id")
@click.option(
    "-o", "--output", type=click.File("w"), default="-", help="CSV file (default: stdout)."
)
def results(batch_id: str, output: IO[str]) -> None:
    """Write one CSV line per input record, in input order.

    Columns: position, request_id, status (OK, ERROR, or QUEUED when not scored yet),
    label, probability, algorithm, version, error.
    """
    from producer.client import Client
    from shared.db.batches import RESULT_COLUMNS, iter_batch_results
    from shared.db.engine import session_scope

    status = Client().batch_status(batch_id)
    if status["total"] is None:
        raise click.ClickException(f"batch {batch_id} is still being submitted; try again later")
    writer = csv.writer(output)
    writer.writerow(RESULT_COLUMNS)
    with session_scope() as session:
        writer.writerows(iter_batch_results(session, batch_id=batch_id, total=status["total"]))
    if output.name != "<stdout>":
        click.echo(f"wrote {status['total']} lines to {output.name}", err=True)
