"""``mlq stats``: requests, errors, latency and accuracy per endpoint and algorithm."""

from __future__ import annotations

from datetime import timedelta

import click

from producer.cli.durations import DURATION, format_duration
from shared.cli_output import emit, json_option, say, table

COLUMNS = (
    ("endpoint", "endpoint"),
    ("algorithm", "algorithm"),
    ("version", "version"),
    ("requests", "requests"),
    ("errors", "errors"),
    ("latency_p50_ms", "p50 ms"),
    ("latency_p95_ms", "p95 ms"),
    ("latency_p99_ms", "p99 ms"),
    ("labelled", "labelled"),
    ("accuracy", "accuracy"),
    ("mae", "MAE"),
)


@click.command()
@click.option(
    "--window", type=DURATION, default="1h", show_default=True, help="How far back: 45s, 30m, 7d."
)
@click.option("--endpoint", default=None, help="Only this endpoint.")
@json_option
def stats(window: timedelta, endpoint: str | None) -> None:
    """Per endpoint and algorithm over a time window: requests, errors, latency
    p50/p95/p99 (worker time per record, ms), labelled requests and their accuracy (a
    regressor's mean absolute error, MAE, and in --json its RMSE).

    \b
        mlq stats --window 24h
    """
    from shared.db.engine import session_scope
    from shared.db.models import utcnow
    from shared.db.stats import serving_stats

    with session_scope() as session:
        rows = serving_stats(session, since=utcnow() - window, endpoint=endpoint)
    if not rows:
        say(f"no requests in the last {format_duration(window)}")
    emit(rows, table(rows, COLUMNS) if rows else "")
