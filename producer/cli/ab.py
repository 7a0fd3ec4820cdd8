"""``mlq ab``: A/B tests between an endpoint's production algorithm and a challenger.

Usage::

    mlq ab start --endpoint income_classifier --a "random forest" --b "extra trees" --duration 2h
    mlq ab list
    mlq ab show 1 [--plot ab.png]
    mlq ab stop 1
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from producer.cli.durations import DURATION
from shared.cli_output import emit, json_option, key_values, say, table
from shared.contracts import DECISION_RULES, DEFAULT_ENDPOINT, RULE_SIGNIFICANCE

TEST_COLUMNS = (
    ("id", "id"),
    ("title", "title"),
    ("created_at", "created"),
    ("ends_at", "ends"),
    ("ended_at", "ended"),
    ("result", "result"),
)


def human_test(test: Mapping[str, Any]) -> str:
    """The test's times, and the decision: how it ended, or what ending now would decide."""
    shown = {
        key: test[key]
        for key in ("id", "title", "created_at", "ends_at", "ended_at", "ended_by")
        if key in test
    }
    decision = test.get("summary") or test.get("live")
    if decision:
        label = "result" if test.get("summary") else "if ended now"
        shown[label] = decision.get("text")
    return key_values(shown)


@click.group()
def ab() -> None:
    """A/B tests: split an endpoint's traffic, end on schedule, promote only a real winner."""


@ab.command("start")
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True)
@click.option("--a", "a", required=True, help="The control: the endpoint's production algorithm.")
@click.option("--b", "b", required=True, help="The challenger.")
@click.option(
    "--duration", type=DURATION, required=True, help="How long it runs: 45s, 30m, 2h, 1d."
)
@click.option("--split", default=0.5, show_default=True, help="Share of traffic for B.")
@click.option(
    "--min-labelled",
    default=200,
    show_default=True,
    type=click.IntRange(1),
    help="Labelled requests each arm needs before a winner can be promoted.",
)
@click.option("--alpha", default=0.05, show_default=True, help="Significance level.")
@click.option(
    "--rule",
    type=click.Choice(DECISION_RULES),
    default=RULE_SIGNIFICANCE,
    show_default=True,
    help="higher_accuracy is the tutorial's rule (no test of chance).",
)
@click.option("--title", default=None)
@json_option
def start(
    endpoint: str,
    a: str,
    b: str,
    duration: timedelta,
    split: float,
    min_labelled: int,
    alpha: float,
    rule: str,
    title: str | None,
) -> None:
    """Start a test; the endpoint's default traffic is split from then on."""
    from producer.client import Client

    emit(
        Client().start_ab_test(
            endpoint=endpoint,
            a=a,
            b=b,
            duration=duration,
            split=split,
            min_labelled=min_labelled,
            alpha=alpha,
            rule=rule,
            title=title,
            created_by="mlq ab start",
        )
    )


@ab.command("list")
@json_option
def list_command() -> None:
    """Every test, running and ended."""
    from producer.client import Client

    tests = Client().ab_tests()
    emit(tests, table(tests, TEST_COLUMNS) if tests else "")


@ab.command("show")
@click.argument("test_id", type=int)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG of each arm's accuracy over time with 95% intervals.",
)
@json_option
def show(test_id: int, plot: Path | None) -> None:
    """Live figures per arm (what ending now would decide), or how it ended."""
    from producer.client import Client

    figures = Client().ab_report(test_id)
    if plot is not None:
        from producer.ab_plot import plot_timeline

        plot_timeline(figures["timeline"], title=figures["title"], path=plot)
        say(f"wrote {plot}")
    emit(figures, human_test)


@ab.command("stop")
@click.argument("test_id", type=int)
@json_option
def stop(test_id: int) -> None:
    """Evaluate and end a test now; promote B only if it really won."""
    from producer.client import Client

    emit(Client().stop_ab_test(test_id), human_test)
