"""``mlq feedback``: the true label of one request, or of many from a CSV file.

Usage::

    mlq feedback REQUEST_ID '>50K'
    mlq feedback --file labels.csv        # columns request_id,label
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from producer.cli.output import EXIT_FAILED, emit


def _pairs(path: Path) -> Iterator[tuple[str, str]]:
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        missing = {"request_id", "label"} - set(reader.fieldnames or [])
        if missing:
            raise click.ClickException(
                f"{path} needs a header with request_id and label "
                f"(missing: {', '.join(sorted(missing))})"
            )
        for row in reader:
            yield (row["request_id"] or "").strip(), (row["label"] or "").strip()


@click.command()
@click.argument("request_id", required=False)
@click.argument("label", required=False)
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A CSV file with columns request_id,label.",
)
@click.option(
    "--timeout", default=300.0, show_default=True, help="Seconds to wait for the outcome."
)
def feedback(request_id: str | None, label: str | None, path: Path | None, timeout: float) -> None:
    """Give the true label of a request (or many, with --file).

    Prints what became of it: recorded, replaced (a second label replaces the first),
    early (no prediction row yet: kept and joined when it arrives), unknown (an id
    never issued: kept, and reported), invalid (a label outside the model's classes).
    Exits 1 when any label was invalid or any id unknown.

    \b
        mlq feedback 5b0f6f0e-... '>50K'
        mlq feedback --file labels.csv
    """
    from producer.client import Client

    if (path is None) == (request_id is None) or (request_id is not None and label is None):
        raise click.UsageError("give REQUEST_ID LABEL, or --file FILE")
    client = Client()
    if path is not None:
        outcome: dict[str, Any] = dict(
            client.feedback_many(
                _pairs(path),
                timeout=timeout,
                on_sent=lambda n: click.echo(f"\rsent {n} labels", nl=False, err=True),
            )
        )
        click.echo("", err=True)
        emit(_summary(outcome))
    else:
        assert request_id is not None and label is not None
        outcome = dict(client.feedback(request_id, label, timeout=timeout))
        emit(outcome)
    if outcome["invalid"] or outcome["unknown"]:
        sys.exit(EXIT_FAILED)


def _summary(outcome: dict[str, Any], shown: int = 20) -> dict[str, Any]:
    """Counts, and the first few ids of each kind (a file may hold millions)."""
    summary: dict[str, Any] = {"recorded": outcome["recorded"]}
    for key in ("replaced", "early", "unknown", "invalid"):
        summary[key] = len(outcome[key])
        if outcome[key]:
            summary[f"{key} (first {shown})"] = outcome[key][:shown]
    return summary
