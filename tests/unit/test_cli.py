"""The command line's conventions, checked without any service: every command takes
--json, durations need a unit, failures are one line (a JSON document with --json, a
traceback only with --debug), and every failure has its exit code."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sqlalchemy.exc import OperationalError

from producer.batches import BatchSubmitError
from producer.cli.durations import format_duration, parse_duration
from producer.cli.failures import explain
from producer.cli.main import cli
from producer.consumers import NoConsumerError
from producer.sending import BrokerUnavailableError
from shared.cli_output import (
    EXIT_FAILED,
    EXIT_UNAVAILABLE,
    EXIT_UNKNOWN_ID,
    EXIT_USAGE,
    table,
)
from shared.errors import MlqError, UnknownRequestError


def leaf_commands(group: click.Group, prefix: str = "mlq") -> dict[str, click.Command]:
    found = {}
    for name, command in group.commands.items():  # the built-in ones, not plugins
        if isinstance(command, click.Group):
            found.update(leaf_commands(command, f"{prefix} {name}"))
        else:
            found[f"{prefix} {name}"] = command
    return found


def test_every_command_takes_json() -> None:
    commands = leaf_commands(cli)
    assert len(commands) >= 15
    missing = [name for name, c in commands.items() if "--json" not in _options(c)]
    assert not missing


def _options(command: click.Command) -> set[str]:
    return {flag for param in command.params for flag in getattr(param, "opts", [])}


@pytest.mark.parametrize(
    ("text", "seconds"), [("45s", 45), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1.5h", 5400)]
)
def test_durations_read_with_their_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["ab", "start", "--a", "x", "--b", "y", "--duration", "2"], "'2' has no unit: write 2s"),
        (["stats", "--window", "90"], "'90' has no unit"),
        (["predict", "--record", "{}", "--wait", "--timeout", "5"], "'5' has no unit"),
        (["result", "r1", "--timeout", "2 weeks"], "unknown unit 'weeks'"),
        (["feedback", "r1", "x", "--timeout", "soon"], "is not a duration like 45s"),
    ],
)
def test_a_duration_without_a_unit_is_refused(args: list[str], problem: str) -> None:
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == EXIT_USAGE, done.output
    assert problem in done.stderr


def test_tables_fit_their_longest_cell() -> None:
    rows = [{"name": "a very long algorithm name", "v": "1"}, {"name": "rf", "v": "0.0.1"}]
    lines = table(rows, [("name", "algorithm"), ("v", "version")]).splitlines()
    assert [line.index(v) for line, v in zip(lines, ("version", "1", "0.0.1"), strict=True)] == [
        len("a very long algorithm name") + 2
    ] * 3


@pytest.fixture
def bad_csv(tmp_path: Path) -> Path:
    path = tmp_path / "records.csv"
    path.write_text('age,workclass\n37,Private\n38,"Private\n39,Private\n')
    return path


def test_a_failure_is_one_line_and_with_json_one_document(bad_csv: Path) -> None:
    plain = CliRunner().invoke(cli, ["batch", "submit", str(bad_csv)])
    assert plain.exit_code == EXIT_FAILED and plain.stdout == ""
    assert plain.stderr.strip().splitlines() == [
        "Error: records.csv, line 3: a quoted field is not closed before the end of the file "
        "(the row runs from line 3 to 4: is a quote not closed?)"
    ]
    as_json = CliRunner().invoke(cli, ["batch", "submit", str(bad_csv), "--json"])
    assert as_json.exit_code == EXIT_FAILED
    error = json.loads(as_json.stdout)["error"]
    assert error["code"] == "batch_input" and "line 3" in error["message"]


def test_debug_shows_the_traceback_too(bad_csv: Path) -> None:
    done = CliRunner().invoke(cli, ["--debug", "batch", "submit", str(bad_csv)])
    assert done.exit_code == EXIT_FAILED
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("Error: records.csv, line 3")


def test_operational_failures_have_their_exit_codes() -> None:
    outage = BrokerUnavailableError("cannot reach the broker at redis://:***@h/0")
    try:
        raise BatchSubmitError("batch b: sending stopped after 0 records") from outage
    except BatchSubmitError as error:
        cut_short = error
    refused = OperationalError("SELECT 1", {}, Exception("connection refused\nmore"))
    cases: list[tuple[BaseException, int, str]] = [
        (UnknownRequestError("no request with id 'x'"), EXIT_UNKNOWN_ID, "unknown_request"),
        (NoConsumerError("predict"), EXIT_UNAVAILABLE, "no_worker"),
        (outage, EXIT_UNAVAILABLE, "broker_unavailable"),
        (cut_short, EXIT_UNAVAILABLE, "batch_submit"),
        (MlqError("refused"), EXIT_FAILED, "mlq_error"),
        (refused, EXIT_UNAVAILABLE, "database_unavailable"),
    ]
    for error, exit_code, code in cases:
        failure = explain(error)
        assert failure is not None and (failure.exit_code, failure.code) == (exit_code, code)
    failure = explain(refused)
    assert failure is not None
    assert failure.message.startswith("cannot reach the database at postgresql")
    assert failure.message.endswith("(connection refused)")
    assert explain(ValueError("a bug")) is None  # keeps its traceback
