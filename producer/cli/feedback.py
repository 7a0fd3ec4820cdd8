"""``mlq feedback``: the true label of one request, or of many from a CSV file.

Usage::

    mlq feedback REQUEST_ID '>50K'
    mlq feedback --file labels.csv        # columns request_id,label
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from celery.exceptions import TimeoutError as CeleryTimeoutError

from producer.cli.durations import DURATION
from producer.cli.failures import drop_abandoned_result_noise
from shared.cli_output import (
    EXIT_FAILED,
    EXIT_NOT_FINISHED,
    emit,
    json_option,
    key_values,
    report_error,
    say,
)
from shared.contracts import QUEUE_FEEDBACK

KINDS = ("replaced", "early", "unknown", "invalid")
SHOWN = 20  # ids listed per kind: a file may hold millions


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
    "--timeout",
    type=DURATION,
    default="30s",
    show_default=True,
    help="How long to wait for what became of the labels.",
)
@json_option
def feedback(
    request_id: str | None, label: str | None, path: Path | None, timeout: timedelta
) -> None:
    """Give the true label of a request (or many, with --file).

    Prints what became of them: recorded, replaced (a second label replaces the
    first), early (no prediction row yet: kept and joined when it arrives), unknown (an
    id never issued: kept, and reported), invalid (a label outside the model's classes:
    not stored). Exits 0 when every label was stored, 1 when any was invalid, 3 when
    the answer did not come within --timeout (the labels are still stored), 5 when no
    worker consumes the feedback queue (then nothing is sent).

    \b
        mlq feedback 5b0f6f0e-... '>50K'
        mlq feedback --file labels.csv
    """
    from producer.client import Client
    from producer.consumers import require_consumer

    if (path is None) == (request_id is None) or (request_id is not None and label is None):
        raise click.UsageError("give REQUEST_ID LABEL, or --file FILE")
    client = Client()
    # Asked before sending, not after: labels nobody can take now would be stored
    # whenever a worker starts, long after this command said it failed.
    require_consumer(client.app, QUEUE_FEEDBACK)
    pairs = _pairs(path) if path is not None else iter([(str(request_id), str(label))])
    try:
        outcome = client.feedback_many(
            pairs, timeout=timeout.total_seconds(), on_sent=_show_sent if path else None
        )
    except CeleryTimeoutError:
        drop_abandoned_result_noise()
        report_error(
            "not_finished",
            f"the labels were sent, but what became of them was not known within "
            f"{timeout.total_seconds():g} s: a worker stores them as it gets to them",
        )
        sys.exit(EXIT_NOT_FINISHED)
    if path is not None:
        say("")
    summary = summarise(dict(outcome))
    emit(summary, _human)
    if summary["invalid"]:
        sys.exit(EXIT_FAILED)


def _show_sent(sent: int) -> None:
    click.echo(f"\rsent {sent} labels", nl=False, err=True)


def summarise(outcome: dict[str, Any]) -> dict[str, Any]:
    """Counts of each kind, and the first ids of each (a file may hold millions)."""
    summary: dict[str, Any] = {"recorded": outcome["recorded"]}
    summary.update({kind: len(outcome[kind]) for kind in KINDS})
    summary["first"] = {kind: outcome[kind][:SHOWN] for kind in KINDS if outcome[kind]}
    return summary


def _human(summary: dict[str, Any]) -> str:
    lines = [key_values({key: summary[key] for key in ("recorded", *KINDS)})]
    for kind, items in summary["first"].items():
        for item in items:
            if isinstance(item, dict) and "error" in item:
                lines.append(f"{kind}: {item['request_id']}: {item['error']}")
            elif isinstance(item, dict):
                lines.append(
                    f"{kind}: {item['request_id']} ({item['previous']} -> {item['label']})"
                )
            else:
                lines.append(f"{kind}: {item}")
    return "\n".join(lines)
