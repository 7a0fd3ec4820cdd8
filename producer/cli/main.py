"""``mlq``: the mlqueue command line.

Usage::

    mlq db upgrade
    mlq train
    celery -A workers worker --loglevel=INFO
    mlq predict --record '{"age": 37, ...}' --wait
    mlq result REQUEST_ID
    mlq algorithms
    mlq batch submit records.csv --wait
    mlq batch results BATCH_ID -o results.csv
    mlq demo

Every command takes ``--json``; the exit codes are the same for all (producer/cli/output.py).
"""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import timedelta
from typing import Any

import click

from producer.cli.ab import ab
from producer.cli.batch import batch
from producer.cli.dead_letters import dead_letters
from producer.cli.demo import demo
from producer.cli.durations import DURATION
from producer.cli.failures import explain
from producer.cli.feedback import feedback
from producer.cli.keys import keys
from producer.cli.models import list_command, models
from producer.cli.plugins import load_plugin, plugin_names
from producer.cli.predict import predict, result
from producer.cli.serve import serve
from producer.cli.stats import stats
from shared.cli_output import DEBUG_FLAG, emit, json_option, report_error, wants_json


class MlqGroup(click.Group):
    """Says an operational failure in one line with its exit code (and, with --json, as
    a JSON document), and adds the commands that live with the workers
    (``producer.cli.plugins``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *plugin_names()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or load_plugin(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError:
            raise
        except click.ClickException as error:
            # click prints the line itself; a --json caller gets the document as well.
            if wants_json():
                report_error("failed", error.format_message())
                ctx.exit(error.exit_code)
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as error:
            failure = explain(error)
            if failure is None:
                raise
            if ctx.meta.get(DEBUG_FLAG):
                traceback.print_exception(error, file=sys.stderr)
            report_error(failure.code, failure.message)
            ctx.exit(failure.exit_code)


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
@click.option(
    "--debug", is_flag=True, help="Show the traceback of a failure, not only its one line."
)
@click.pass_context
def cli(ctx: click.Context, log_level: str, debug: bool) -> None:
    """mlqueue: serve scikit-learn models through Celery, Redis and PostgreSQL.

    Configuration comes from MLQ_* environment variables; with none set, everything
    runs from local files under .mlq/ (see `mlq config`). Every command takes --json.
    Exit codes: 0 ok, 1 failed, 2 usage, 3 not finished yet, 4 unknown id, 5 a service
    or worker is unavailable.
    """
    ctx.meta[DEBUG_FLAG] = debug
    logging.basicConfig(
        level=log_level.upper(),
        format="[%(asctime)s: %(levelname)s/%(name)s] %(message)s",
        stream=sys.stderr,
    )


@cli.command()
@json_option
def config() -> None:
    """Show where mlqueue's broker, result backend, database and models are."""
    from shared.settings import get_settings

    emit(get_settings().describe())


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@json_option
def db_upgrade(revision: str) -> None:
    """Create or migrate the database schema (Alembic)."""
    from alembic.util import CommandError

    from shared.db.migrate import current_revision, upgrade
    from shared.settings import get_settings, redact_url

    try:
        upgrade(revision=revision)
    except CommandError as error:
        raise click.ClickException(f"cannot upgrade to {revision!r}: {error}") from None
    done = {"database": redact_url(get_settings().database_url), "revision": current_revision()}
    emit(done, f"database {done['database']} at revision {done['revision']}")


@db.command("prune")
@click.option(
    "--older-than",
    type=DURATION,
    required=True,
    help="Drop the request log's whole days older than this: 90d, say.",
)
@click.option("--dry-run", is_flag=True, help="Say what would go; change nothing.")
@json_option
def db_prune(older_than: timedelta, dry_run: bool) -> None:
    """Drop old days of the request log, summarising what refers to them first.

    Each day older than the cutoff is dropped whole (its partition), oldest first,
    after its rows are counted into ml_request_summary, the timelines of ended A/B
    tests with evidence in it are frozen into their summaries, and its feedback,
    shadow answers and replay rows are deleted. A day holding evidence of a running
    A/B test is kept and named.
    """
    from shared.db.prune import prune

    report = prune(older_than, dry_run=dry_run).as_dict()
    verb = "would drop" if dry_run else "dropped"
    lines = [
        f"cutoff: {report['cutoff']}",
        f"{verb}: {len(report['dropped_days'])} day(s), {report['rows_dropped']} row(s)",
        f"feedback deleted: {report['feedback_deleted']} "
        f"(and {report['orphan_feedback_deleted']} without a request)",
        f"A/B: {report['shadow_answers_deleted']} shadow answer(s), "
        f"{report['replay_requests_deleted']} replay row(s) deleted; "
        f"timelines frozen: {report['tests_frozen'] or 'none'}",
    ]
    lines += [f"kept {day}: {why}" for day, why in report["kept_days"].items()]
    emit(report, "\n".join(lines))


cli.add_command(predict)
cli.add_command(result)
cli.add_command(demo)
cli.add_command(batch)
cli.add_command(feedback)
cli.add_command(ab)
cli.add_command(stats)
cli.add_command(models)
cli.add_command(serve)
cli.add_command(keys)
cli.add_command(dead_letters)
# The tutorial's word for what `mlq models list` shows.
cli.add_command(list_command, name="algorithms")
