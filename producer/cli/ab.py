"""``mlq ab``: A/B tests between an endpoint's production algorithm and a challenger.

Usage::

    mlq ab start --b "random forest@0.0.2" --duration 2h
    mlq ab start --a "random forest" --b "extra trees" --mode shadow --duration 1d --label-delay 10m
    mlq ab list
    mlq ab show 1 [--plot ab.png] [--json]
    mlq ab stop 1
    mlq ab replay --b "random forest@0.0.2" --since 7d
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import click

from producer.ab_text import human_test, human_tests
from producer.cli.durations import DURATION
from shared.cli_output import EXIT_NOT_FINISHED, emit, json_option, say
from shared.contracts import DECISION_RULES, DEFAULT_ENDPOINT, LIVE_MODES, RULE_SEQUENTIAL

ALGORITHM_HELP = "NAME or NAME@VERSION (a name with several versions needs its version)"


@click.group()
def ab() -> None:
    """A/B tests: reach a challenger with live traffic (split or shadow) or past requests
    (replay); beat ends a test once the evidence is conclusive, a guardrail is breached
    or its time is up, and promotes only a real winner."""


@ab.command("start")
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True)
@click.option("--a", "a", help=f"The control: {ALGORITHM_HELP}; default: the production one.")
@click.option("--b", "b", required=True, help=f"The challenger: {ALGORITHM_HELP}.")
@click.option(
    "--mode",
    type=click.Choice(LIVE_MODES),
    default=LIVE_MODES[0],
    show_default=True,
    help="split: B serves a share of the traffic; shadow: A serves everyone, B scores the "
    "same records beside it (a paired test needing far fewer labels).",
)
@click.option(
    "--duration", type=DURATION, required=True, help="The longest it runs: 45s, 30m, 2h, 1d."
)
@click.option("--split", default=0.5, show_default=True, help="Share of traffic for B (split).")
@click.option(
    "--rule",
    type=click.Choice(DECISION_RULES),
    default=RULE_SEQUENTIAL,
    show_default=True,
    help="sequential: an always-valid test, ended as soon as it is conclusive; "
    "higher_accuracy: the tutorial's rule, decided at the end with no test of chance.",
)
@click.option("--alpha", default=0.05, show_default=True, help="False-promotion rate.")
@click.option(
    "--min-labelled",
    default=200,
    show_default=True,
    type=click.IntRange(0),
    help="Labelled requests each arm (paired records, in shadow) needs before a winner "
    "can be promoted.",
)
@click.option(
    "--min-coverage",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of each arm's eligible requests that must be labelled before deciding.",
)
@click.option(
    "--label-delay",
    type=DURATION,
    default="0s",
    show_default=True,
    help="How long labels take to come: younger requests are not expected to have one.",
)
@click.option(
    "--guardrail-alpha",
    default=0.05,
    show_default=True,
    help="Level at which B's error rate or latency counts as worse than A's.",
)
@click.option(
    "--latency-margin",
    default=0.2,
    show_default=True,
    help="How much slower (relative) B may be before its latency is a breach.",
)
@click.option("--title", default=None)
@json_option
def start(
    endpoint: str,
    a: str | None,
    b: str,
    mode: str,
    duration: timedelta,
    split: float,
    rule: str,
    alpha: float,
    min_labelled: int,
    min_coverage: float,
    label_delay: timedelta,
    guardrail_alpha: float,
    latency_margin: float,
    title: str | None,
) -> None:
    """Start a test; the endpoint's default traffic reaches B from then on."""
    from producer.client import Client

    test = Client().start_ab_test(
        endpoint=endpoint,
        a=a,
        b=b,
        mode=mode,
        duration=duration,
        split=split,
        rule=rule,
        alpha=alpha,
        min_labelled=min_labelled,
        min_coverage=min_coverage,
        label_delay=label_delay,
        guardrail_alpha=guardrail_alpha,
        latency_margin=latency_margin,
        title=title,
        created_by="mlq ab start",
    )
    emit(test, human_test)


@ab.command("list")
@json_option
def list_command() -> None:
    """Every test, running and ended."""
    from producer.client import Client

    tests = Client().ab_tests()
    emit(tests, human_tests(tests) if tests else "")


@ab.command("show")
@click.argument("test_id", type=int)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG: each arm's accuracy (or error) over request time with its 95% "
    "interval, label coverage and error rate (needs the `plot` extra).",
)
@json_option
def show(test_id: int, plot: Path | None) -> None:
    """A test's evidence: how it ended, or, while it runs, what beat would do now and what
    a stop now would decide. Reads the database: no worker needed."""
    from producer.client import Client

    figures = Client().ab_report(test_id)
    if plot is not None:
        from producer.ab_plot import plot_report

        plot_report(figures, path=plot)
        say(f"wrote {plot}")
    emit(figures, human_test)


@ab.command("stop")
@click.argument("test_id", type=int)
@json_option
def stop(test_id: int) -> None:
    """Decide and end a test now (valid at any moment); promote B only if it really won.
    Writes the database: no worker needed."""
    from producer.client import Client

    emit(Client().stop_ab_test(test_id), human_test)


@ab.command("replay")
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True)
@click.option("--b", "b", required=True, help=f"The challenger: {ALGORITHM_HELP}.")
@click.option(
    "--a", "a", help=f"Whose past answers to replay: {ALGORITHM_HELP}; default: production."
)
@click.option(
    "--since", type=DURATION, default="7d", show_default=True, help="How far back to look."
)
@click.option(
    "--limit",
    default=10_000,
    show_default=True,
    type=click.IntRange(1),
    help="The newest this many requests.",
)
@click.option("--alpha", default=0.05, show_default=True, help="Significance level.")
@click.option(
    "--min-labelled",
    default=200,
    show_default=True,
    type=click.IntRange(0),
    help="Labelled records the comparison needs before it names a better model.",
)
@click.option(
    "--timeout", type=DURATION, default="10m", show_default=True, help="How long to wait."
)
@json_option
def replay(
    endpoint: str,
    b: str,
    a: str | None,
    since: timedelta,
    limit: int,
    alpha: float,
    min_labelled: int,
    timeout: timedelta,
) -> None:
    """Re-score requests A already answered with B (through the batch path) and compare
    them pair by pair with the feedback already given, before any live traffic reaches
    B. Promotes nothing. Exits 3 if the replay is not scored within --timeout (`mlq ab
    show ID` later), 5 when no worker consumes the batch queue."""
    from producer.client import Client

    figures = Client().replay_ab_test(
        endpoint=endpoint,
        a=a,
        b=b,
        since=since,
        limit=limit,
        alpha=alpha,
        min_labelled=min_labelled,
        timeout=timeout.total_seconds(),
        created_by="mlq ab replay",
        on_progress=_progress(),
    )
    emit(figures, human_test)
    if figures["state"] != "ended":
        sys.exit(EXIT_NOT_FINISHED)


def _progress() -> Callable[[int, int], None]:
    """Says how far a replay got, each time it got further."""
    said = [-1]

    def show(done: int, total: int) -> None:
        if done != said[0]:
            said[0] = done
            say(f"replayed {done} of {total} records")

    return show
