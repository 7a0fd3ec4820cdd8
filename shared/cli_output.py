"""How every ``mlq`` command prints, and the exit codes they all share.

The convention, the same for every command:

- The command's answer goes to stdout; progress, messages and errors go to stderr.
- With ``--json``, stdout holds exactly one JSON document: the answer, or, when the
  command failed, ``{"error": {"code": ..., "message": ...}}``.
- Without it, a short human form: a bare id (something was queued), ``key: value``
  lines (one thing), an aligned table (a list of things).

docs/cli.md and the README carry the table of exit codes; a unit test compares them
with ``EXIT_CODES``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FINISHED = 3
EXIT_UNKNOWN_ID = 4
EXIT_UNAVAILABLE = 5

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILED: "failed: an error, a result with status ERROR, a batch with failed "
    "records, an invalid label, input refused before sending",
    EXIT_USAGE: "usage: a bad option or argument (invalid JSON, a duration without a unit)",
    EXIT_NOT_FINISHED: "not finished yet: a request QUEUED or RUNNING, a batch still being "
    "submitted or not done within --timeout, an answer that did not come in time",
    EXIT_UNKNOWN_ID: "unknown id: no request, batch or A/B test with this id",
    EXIT_UNAVAILABLE: "unavailable: a service cannot be reached, the database is not "
    "migrated, or no worker consumes the queue",
}

# Where the flags of one invocation are kept (click's per-invocation ``ctx.meta``).
JSON_FLAG = "mlq.json"
DEBUG_FLAG = "mlq.debug"

F = TypeVar("F", bound=Callable[..., Any])


def json_option(command: F) -> F:
    """Give a command ``--json``; ``emit`` and the error report read it."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.meta[JSON_FLAG] = value
        return value

    return click.option(
        "--json",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=remember,
        help="Print one JSON document on stdout (messages stay on stderr).",
    )(command)


def wants_json() -> bool:
    context = click.get_current_context(silent=True)
    return bool(context and context.meta.get(JSON_FLAG))


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def emit(document: Any, human: str | Callable[[Any], str] | None = None) -> None:
    """Print a command's answer: the document with ``--json``, else its human form
    (``key: value`` lines when none is given)."""
    if wants_json():
        click.echo(to_json(document))
        return
    if human is None:
        text = key_values(document)
    elif callable(human):
        text = human(document)
    else:
        text = human
    if text:
        click.echo(text)


def report_error(code: str, message: str) -> None:
    """A failure: one line on stderr, and with ``--json`` the error document on stdout."""
    click.echo(f"Error: {message}", err=True)
    if wants_json():
        click.echo(to_json({"error": {"code": code, "message": message}}))


def say(text: str) -> None:
    """A message for the person at the terminal: always stderr, never the answer."""
    click.echo(text, err=True)


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return str(round(value, 4))
    if isinstance(value, Mapping | list):
        return json.dumps(value, default=str)
    return str(value)


def key_values(document: Mapping[str, Any]) -> str:
    width = max((len(str(key)) for key in document), default=0)
    return "\n".join(f"{key + ':':<{width + 1}} {cell(value)}" for key, value in document.items())


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """Rows as aligned columns, ``columns`` being (key, heading) pairs; each column is as
    wide as its widest cell, so long names never push the others out of line."""
    lines = [[heading for _, heading in columns]]
    lines += [[cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def exit_code_for(result: Mapping[str, Any]) -> int:
    """A request's result: OK, ERROR (failed), or anything else (not finished yet)."""
    return {"OK": EXIT_OK, "ERROR": EXIT_FAILED}.get(result.get("status", ""), EXIT_NOT_FINISHED)
