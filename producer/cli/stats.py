"""``mlq stats``: requests, errors, latency and accuracy per endpoint and algorithm."""

from __future__ import annotations

import click

from producer.cli.ab import parse_duration
from producer.cli.output import emit


@click.command()
@click.option("--window", default="1h", show_default=True, help="How far back: 45s, 30m, 2h, 7d.")
@click.option("--endpoint", default=None, help="Only this endpoint.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
def stats(window: str, endpoint: str | None, as_json: bool) -> None:
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
        rows = serving_stats(session, since=utcnow() - parse_duration(window), endpoint=endpoint)
    if as_json:
        emit(rows)
        return
    if not rows:
        click.echo(f"no requests in the last {window}", err=True)
        return
    columns = (
        "endpoint",
        "algorithm",
        "version",
        "requests",
        "errors",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "labelled",
        "accuracy",
        "mae",
    )
    headers = (
        "endpoint",
        "algorithm",
        "version",
        "requests",
        "errors",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "labelled",
        "accuracy",
        "MAE",
    )
    table = [headers] + [tuple("-" if r[c] is None else str(r[c]) for c in columns) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
    for line in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
