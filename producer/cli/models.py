"""``mlq models``: the models an endpoint serves, and their lifecycle.

Usage::

    mlq models add model.skops --endpoint iris --name forest --version 1 --sample s.csv
    mlq models list [--endpoint E]
    mlq models promote ENDPOINT NAME VERSION --reason "better on last week's data"
    mlq models rollback ENDPOINT --reason "latency regression"
    mlq models retire ENDPOINT NAME VERSION
    mlq models history ENDPOINT
    mlq models isolate ENDPOINT            # its own queues, for its own workers

All but ``add`` read and write the registry directly; ``add`` needs the worker's
machine-learning stack (it converts and checks the model) and is found by entry point.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import click

from producer.cli.plugins import load_plugin, plugin_names
from shared.cli_output import emit, json_option, say, table

PLUGINS = "mlqueue.commands.models"
COLUMNS = (
    ("endpoint", "endpoint"),
    ("name", "algorithm"),
    ("version", "version"),
    ("status", "status"),
    ("served_by", "runtime"),
    ("sha", "sha256"),
    ("created", "created"),
    ("holders", "workers"),
)


class ModelsGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *plugin_names(PLUGINS)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or load_plugin(cmd_name, PLUGINS)


def _who() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


@click.group(cls=ModelsGroup)
def models() -> None:
    """Register models, list them, promote, roll back and retire versions."""


@models.command("list")
@click.option("--endpoint", default=None, help="Only this endpoint.")
@json_option
def list_command(endpoint: str | None) -> None:
    """Every endpoint, algorithm and version: status, runtime, hash, who registered it
    and when, and which live workers hold it."""
    from shared.db.engine import session_scope
    from shared.db.holdings import live_holders
    from shared.registry import list_algorithms
    from shared.settings import get_settings

    # A worker says what it holds every MLQ_MODEL_POLL_SECONDS: three missed means gone.
    within = timedelta(seconds=3 * get_settings().model_poll_s + 5)
    with session_scope() as session:
        rows = list_algorithms(session, endpoint=endpoint)
        holders = live_holders(session, within=within)
    listed = [{**a.as_dict(), "workers": holders.get(a.id, [])} for a in rows]
    if not listed:
        say("no models registered: `mlq train` or `mlq models add`")
    shown = [
        {
            **a,
            "served_by": a["runtime"] + ("*" if a["runtime_note"] else ""),
            "sha": (a["artifact_sha256"] or "")[:12],
            "created": f"{a['created_at'][:19]} by {a['created_by'] or a['owner']}",
            "holders": ", ".join(a["workers"]) or "-",
        }
        for a in listed
    ]
    emit(listed, table(shown, COLUMNS) if listed else "")
    if any(a["runtime_note"] for a in listed):
        say("* served by scikit-learn: not converted to ONNX (--json shows why: runtime_note)")


def _change(change: Callable[..., Any], line: str, **arguments: str) -> None:
    """Apply one lifecycle change (``shared.lifecycle``) as the person running `mlq`, and
    print the algorithm it leaves; ``line`` is formatted with the algorithm's fields."""
    from shared.db.engine import session_scope

    with session_scope() as session:
        info = change(session, created_by=_who(), **arguments)
    emit(info.as_dict(), line.format(**info.as_dict()))


def _versioned(command: Callable[..., None]) -> Callable[..., None]:
    for decorator in reversed(
        (
            click.argument("endpoint"),
            click.argument("name"),
            click.argument("version"),
            click.option("--reason", default="", help="Why, for the status history."),
            json_option,
        )
    ):
        command = decorator(command)
    return command


@models.command()
@_versioned
def promote(endpoint: str, name: str, version: str, reason: str) -> None:
    """Make a version the endpoint's production model (the current one goes to staging)."""
    from shared.lifecycle import promote

    line = "{endpoint}: {name} {version} is in production"
    _change(promote, line, endpoint=endpoint, name=name, version=version, reason=reason)


@models.command()
@click.argument("endpoint")
@click.option("--reason", default="", help="Why, for the status history.")
@json_option
def rollback(endpoint: str, reason: str) -> None:
    """Put back the model that was in production before the current one."""
    from shared.lifecycle import rollback

    line = "{endpoint}: rolled back to {name} {version}"
    _change(rollback, line, endpoint=endpoint, reason=reason)


@models.command()
@_versioned
def retire(endpoint: str, name: str, version: str, reason: str) -> None:
    """Take a version out of service (workers stop holding it; its rows stay)."""
    from shared.lifecycle import retire

    line = "{endpoint}: {name} {version} retired"
    _change(retire, line, endpoint=endpoint, name=name, version=version, reason=reason)


@models.command()
@click.argument("endpoint")
@json_option
def history(endpoint: str) -> None:
    """Every status change of the endpoint's models: when, what, who, why."""
    from shared.db.engine import session_scope
    from shared.lifecycle import status_history

    with session_scope() as session:
        rows = status_history(session, endpoint=endpoint)
    emit(
        rows,
        "\n".join(
            f"{row['at'][:19]}  {row['algorithm']} {row['version']} -> {row['status']}  "
            f"by {row['by']}" + (f": {row['reason']}" if row["reason"] else "")
            for row in rows
        ),
    )


@models.command()
@click.argument("endpoint")
@click.option("--off", is_flag=True, help="Back to the shared queues.")
@json_option
def isolate(endpoint: str, off: bool) -> None:
    """Send an endpoint's work to its own queues (predict.ENDPOINT, batch.ENDPOINT), served
    by workers started with `--endpoints ENDPOINT`, so a heavy model scales apart."""
    from shared.contracts import QUEUE_BATCH, QUEUE_PREDICT, endpoint_queue
    from shared.db.engine import session_scope
    from shared.lifecycle import set_isolated

    with session_scope() as session:
        set_isolated(session, endpoint=endpoint, isolated=not off)
    queues = [endpoint_queue(q, endpoint) for q in (QUEUE_PREDICT, QUEUE_BATCH)]
    payload = {"endpoint": endpoint, "isolated": not off, "queues": [] if off else queues}
    emit(
        payload,
        f"{endpoint}: back on the shared queues"
        if off
        else f"{endpoint}: work goes to {', '.join(queues)}; serve it with "
        f"`celery -A workers worker --endpoints {endpoint}`",
    )
