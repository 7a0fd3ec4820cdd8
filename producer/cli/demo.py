"""`mlq demo`: the whole path on embedded defaults, no server needed.

Migrates the database, trains the models if they are missing, starts a worker,
predicts the tutorial's sample record through the queue, and prints the result.
"""

from __future__ import annotations

import json
import time

import click

from producer.cli.output import emit
from shared.contracts import DEFAULT_ENDPOINT, EXAMPLE_RECORD


def _step(text: str) -> None:
    click.secho(f"==> {text}", fg="cyan", err=True)


@click.command()
def demo() -> None:
    """Train if needed, start a worker, predict the sample record through the queue.

    Usage:

    \b
        mlq demo
    """
    from producer.client import Client
    from producer.local_worker import LocalWorker
    from shared.db.migrate import upgrade
    from shared.settings import get_settings

    settings = get_settings()
    _step("configuration")
    for what, where in settings.describe().items():
        click.echo(f"    {what:<15} {where}", err=True)

    _step("migrating the database")
    upgrade()

    _step("training the models if they are missing")
    # The demo plays every role, the trainer's included: this is `mlq train`.
    from producer.cli.main import train_and_register

    train_and_register(force=False, data=None, to_stderr=True)

    log_path = settings.home / "demo-worker.log"
    _step(f"starting a worker (log: {log_path})")
    started = time.monotonic()
    with LocalWorker(log_path=log_path, name="demo") as _worker:
        click.echo(f"    ready in {time.monotonic() - started:.1f}s", err=True)
        _step("predicting the tutorial's sample record through the queue")
        click.echo(f"    {json.dumps(EXAMPLE_RECORD)}", err=True)
        client = Client()
        sent = time.monotonic()
        request_id = client.predict(EXAMPLE_RECORD, endpoint=DEFAULT_ENDPOINT)
        result = client.result(request_id, timeout=60)
        elapsed_ms = (time.monotonic() - sent) * 1000
        emit(result)
        click.echo(f"    round trip {elapsed_ms:.0f} ms", err=True)
        _step("stopping the worker")
    _step("next")
    click.echo(
        f"    mlq result {request_id}      # the stored result, any time later\n"
        "    mlq algorithms               # the registry\n"
        "    see README.md to run against Redis and PostgreSQL",
        err=True,
    )
    if result.get("status") != "OK":
        raise click.ClickException("the demo prediction did not succeed")
