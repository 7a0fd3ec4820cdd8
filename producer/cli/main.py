"""``mlq``: the mlqueue command line.

Usage::

    mlq db upgrade
    mlq train
    celery -A workers worker --loglevel=INFO
    mlq predict --endpoint income_classifier --json '{"age": 37, ...}' --wait
    mlq result REQUEST_ID
    mlq algorithms
    mlq batch submit records.csv --wait
    mlq batch results BATCH_ID -o results.csv
    mlq demo
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

from producer.cli.ab import ab
from producer.cli.batch import batch
from producer.cli.demo import demo
from producer.cli.feedback import feedback
from producer.cli.models import models
from producer.cli.output import EXIT_UNKNOWN_ID, emit, exit_code_for
from producer.cli.plugins import load_plugin, plugin_names
from producer.cli.stats import stats
from shared.contracts import DEFAULT_ENDPOINT
from shared.errors import MlqError, UnknownRequestError


class MlqGroup(click.Group):
    """Turns mlqueue's own errors into one clear line and a non-zero exit code, and adds
    the commands that live with the workers (``producer.cli.plugins``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *plugin_names()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or load_plugin(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UnknownRequestError as error:
            click.echo(f"Error: {error}", err=True)
            sys.exit(EXIT_UNKNOWN_ID)
        except MlqError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=MlqGroup)
@click.version_option(package_name="mlqueue")
@click.option(
    "--log-level",
    envvar="MLQ_LOG_LEVEL",
    default="WARNING",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="INFO logs one line per request, chunk and feedback message sent, with its id.",
)
def cli(log_level: str) -> None:
    """mlqueue: serve scikit-learn models through Celery, Redis and PostgreSQL.

    Configuration comes from MLQ_* environment variables; with none set, everything
    runs from local files under .mlq/ (see `mlq config`).
    """
    logging.basicConfig(
        level=log_level.upper(),
        format="[%(asctime)s: %(levelname)s/%(name)s] %(message)s",
        stream=sys.stderr,
    )


@cli.command()
def config() -> None:
    """Show where mlqueue's broker, result backend, database and models are."""
    from shared.settings import get_settings

    emit(get_settings().describe())


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the database schema (Alembic)."""
    from alembic.util import CommandError

    from shared.db.migrate import current_revision, upgrade
    from shared.settings import get_settings, redact_url

    try:
        upgrade(revision=revision)
    except CommandError as error:
        raise click.ClickException(f"cannot upgrade to {revision!r}: {error}") from None
    click.echo(
        f"database {redact_url(get_settings().database_url)} at revision {current_revision()}"
    )


@cli.command()
@click.option("--endpoint", default=None, help="Only this endpoint.")
def algorithms(endpoint: str | None) -> None:
    """List endpoints, algorithms, versions and their current status."""
    from shared.db.engine import session_scope
    from shared.registry import list_algorithms

    with session_scope() as session:
        rows = list_algorithms(session, endpoint=endpoint)
    if not rows:
        if endpoint:
            raise click.ClickException(f"no algorithms registered for endpoint {endpoint!r}")
        click.echo("no algorithms registered yet: run `mlq train` (or start a worker)", err=True)
        return
    click.echo(f"{'endpoint':<20} {'algorithm':<16} {'version':<8} {'status':<11} sha256")
    for a in rows:
        sha = (a.artifact_sha256 or "")[:12]
        click.echo(f"{a.endpoint:<20} {a.name:<16} {a.version:<8} {a.status:<11} {sha}")


def _parse_record(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--json") from None
    except RecursionError:
        raise click.BadParameter("nested too deep to read", param_hint="--json") from None


@cli.command()
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True)
@click.option("--json", "record_json", help="The record, as a JSON object.")
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
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait with --wait.")
def predict(
    endpoint: str,
    record_json: str | None,
    record_file: Any,
    status: str | None,
    algorithm_version: str | None,
    request_id: str | None,
    wait: bool,
    timeout: float,
) -> None:
    """Enqueue one record for prediction; print its request id (or, with --wait, its result).

    Usage:

    \b
        mlq predict --json '{"age": 37, "workclass": "Private", ...}' --wait
    """
    from producer.client import Client

    if (record_json is None) == (record_file is None):
        raise click.UsageError("give the record with exactly one of --json or --file")
    record = _parse_record(record_json if record_json is not None else record_file.read())
    client = Client()
    issued = client.predict(
        record, endpoint=endpoint, status=status, version=algorithm_version, request_id=request_id
    )
    if not wait:
        emit({"request_id": issued, "status": "QUEUED"})
        return
    result = client.result(issued, timeout=timeout)
    emit(result)
    sys.exit(exit_code_for(result))


@cli.command()
@click.argument("request_id")
@click.option(
    "--wait", "timeout", type=float, default=0, help="Seconds to wait for a final result."
)
def result(request_id: str, timeout: float) -> None:
    """Print the result of a request by id (exit 4 when the id was never issued)."""
    from producer.client import Client

    outcome = Client().result(request_id, timeout=timeout)
    emit(outcome)
    sys.exit(exit_code_for(outcome))


cli.add_command(demo)
cli.add_command(batch)
cli.add_command(feedback)
cli.add_command(ab)
cli.add_command(stats)
cli.add_command(models)
