"""How the CLI prints: JSON on stdout, messages on stderr, and its exit codes."""

from __future__ import annotations

import json
from typing import Any

import click

# Exit codes, documented in the README.
EXIT_OK = 0
EXIT_FAILED = 1  # an error, or a request whose result is status ERROR
EXIT_NOT_FINISHED = 3  # still queued or running when --timeout ran out
EXIT_UNKNOWN_ID = 4  # the request id was never issued


def emit(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def exit_code_for(result: dict[str, Any]) -> int:
    return {"OK": EXIT_OK, "ERROR": EXIT_FAILED}.get(result.get("status", ""), EXIT_NOT_FINISHED)
