"""``mlq ab``: A/B tests between an endpoint's production algorithm and a challenger.

Usage::

    mlq ab start --endpoint income_classifier --a "random forest" --b "extra trees" --duration 2h
    mlq ab list
    mlq ab show 1 [--plot ab.png]
    mlq ab stop 1
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import click

from producer.cli.output import emit
from shared.contracts import DECISION_RULES, DEFAULT_ENDPOINT, RULE_SIGNIFICANCE

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """'90' or '90s', '30m', '2h', '1d'."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration like 45s, 30m, 2h or 1d")
    return timedelta(seconds=float(match[1]) * UNITS[match[2] or "s"])


@click.group()
def ab() -> None:
    """A/B tests: split an endpoint's traffic, end on schedule, promote only a real winner."""


@ab.command("start")
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True)
@click.option("--a", "a", required=True, help="The control: the endpoint's production algorithm.")
@click.option("--b", "b", required=True, help="The challenger.")
@click.option("--duration", required=True, help="How long it runs: 45s, 30m, 2h, 1d.")
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
def start(
    endpoint: str,
    a: str,
    b: str,
    duration: str,
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
            duration=parse_duration(duration),
            split=split,
            min_labelled=min_labelled,
            alpha=alpha,
            rule=rule,
            title=title,
            created_by="mlq ab start",
        )
    )


@ab.command("list")
def list_command() -> None:
    """Every test, running and ended."""
    from producer.client import Client

    emit(Client().ab_tests())


@ab.command("show")
@click.argument("test_id", type=int)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG of each arm's accuracy over time with 95% intervals.",
)
def show(test_id: int, plot: Path | None) -> None:
    """Live figures per arm (what ending now would decide), or how it ended."""
    from producer.client import Client

    figures = Client().ab_report(test_id)
    emit(figures)
    if plot is not None:
        from producer.ab_plot import plot_timeline

        plot_timeline(figures["timeline"], title=figures["title"], path=plot)
        click.echo(f"wrote {plot}", err=True)


@ab.command("stop")
@click.argument("test_id", type=int)
def stop(test_id: int) -> None:
    """Evaluate and end a test now; promote B only if it really won."""
    from producer.client import Client

    emit(Client().stop_ab_test(test_id))
