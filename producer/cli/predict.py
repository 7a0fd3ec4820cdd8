"""``mlq predict`` and ``mlq result``: one record through the queue, a result by id.

Usage::

    mlq predict --record '{"age": 37, "workclass": "Private", ...}' --wait
    mlq predict --file record.json            # or --file - for stdin
    mlq result REQUEST_ID --wait --timeout 10s
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import click

from producer.cli.durations import DURATION
from shared.cli_output import (
    EXIT_NOT_FINISHED,
    emit,
    exit_code_for,
    json_option,
    key_values,
)
from shared.contracts import DEFAULT_ENDPOINT, QUEUE_BATCH, QUEUE_PREDICT, parse_batch_request_id


def _parse_record(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=source) from None
    except RecursionError:
        raise click.BadParameter("nested too deep to read", param_hint=source) from None


def human_result(result: Mapping[str, Any]) -> str:
    """A result as ``key: value`` lines: what was predicted, by which algorithm, or why not."""
    shown: dict[str, Any] = {"request_id": result.get("request_id"), "status": result["status"]}
    if result.get("label") is not None:
        shown["label"] = result["label"]
        shown["probability"] = result.get("probability")
    algorithm = result.get("algorithm")
    if algorithm:
        shown["algorithm"] = (
            f"{algorithm['name']} {algorithm['version']} ({algorithm['status']}) "
            f"on {algorithm['endpoint']}"
        )
    error = result.get("error")
    if error:
        shown["error"] = f"{error['code']}: {error['message']}"
    return key_values(shown)


def wait_for_result(client: Any, request_id: str, timeout: timedelta) -> dict[str, Any]:
    """The result, waiting up to ``timeout``; a queue no worker consumes is named after
    a first look instead of being waited out."""
    from producer.consumers import wait_checking_consumer

    # An id shaped like "{batch}:{position}" was (almost always) a batch record.
    queue = QUEUE_BATCH if parse_batch_request_id(request_id) else QUEUE_PREDICT
    return wait_checking_consumer(
        client.app,
        queue,
        wait=lambda seconds: client.result(request_id, timeout=seconds),
        finished=lambda outcome: exit_code_for(outcome) != EXIT_NOT_FINISHED,
        timeout=timeout.total_seconds(),
    )


@click.command()
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True)
@click.option("--record", "record_json", help="The record, as a JSON object.")
@click.option(
    "--file",
    "record_file",
    type=click.File("r"),
    help="Read the record (a JSON object) from this file, or - for stdin.",
)
@click.option("--status", default=None, help="Select by status (default: production).")
@click.option("--version", "algorithm_version", default=None, help="Select by version.")
@click.option("--request-id", default=None, help="Your own request id (default: a new UUID).")
@click.option("--wait", is_flag=True, help="Wait for the result and print it.")
@click.option(
    "--timeout",
    type=DURATION,
    default="30s",
    show_default=True,
    help="How long --wait waits: 10s, 2m.",
)
@json_option
def predict(
    endpoint: str,
    record_json: str | None,
    record_file: Any,
    status: str | None,
    algorithm_version: str | None,
    request_id: str | None,
    wait: bool,
    timeout: timedelta,
) -> None:
    """Enqueue one record; print its request id (or, with --wait, its result).

    Exits 0 for OK, 1 for an ERROR result, 3 when not finished within --timeout, 5 when
    no worker consumes the queue.

    \b
        mlq predict --record '{"age": 37, "workclass": "Private", ...}' --wait
    """
    from producer.client import Client

    if (record_json is None) == (record_file is None):
        raise click.UsageError("give the record with exactly one of --record or --file")
    if record_json is not None:
        record = _parse_record(record_json, "--record")
    else:
        record = _parse_record(record_file.read(), "--file")
    client = Client()
    issued = client.predict(
        record, endpoint=endpoint, status=status, version=algorithm_version, request_id=request_id
    )
    if not wait:
        emit({"request_id": issued, "status": "QUEUED"}, issued)
        return
    outcome = wait_for_result(client, issued, timeout)
    emit(outcome, human_result)
    sys.exit(exit_code_for(outcome))


@click.command()
@click.argument("request_id")
@click.option("--wait", is_flag=True, help="Wait for a final result.")
@click.option(
    "--timeout", type=DURATION, default="30s", show_default=True, help="How long --wait waits."
)
@json_option
def result(request_id: str, wait: bool, timeout: timedelta) -> None:
    """The result of a request (single, or a record of a batch) by its id.

    Exits 0 for OK, 1 for ERROR, 3 while QUEUED or RUNNING, 4 for an id never issued.
    """
    from producer.client import Client

    client = Client()
    outcome = wait_for_result(client, request_id, timeout) if wait else client.result(request_id)
    emit(outcome, human_result)
    sys.exit(exit_code_for(outcome))
