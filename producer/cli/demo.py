"""`mlq demo`: the whole mission on embedded defaults, no server needed (or on Redis and
PostgreSQL when the MLQ_* URLs are set).

Migrates the database, trains the models if they are missing, starts a worker and
beat, predicts the tutorial's sample record, scores a batch of held-out records with a
progress bar, runs an A/B test on them with their true labels as feedback, lets beat
end it, and prints the decision.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import click

from producer.cli.predict import human_result
from shared.cli_output import emit, json_option, key_values
from shared.contracts import DEFAULT_ENDPOINT, EXAMPLE_RECORD

BATCH_RECORDS = 1000
TUTORIAL = ("random forest", "extra trees")
AB_SECONDS = 10
TARGET = "income"


def _step(text: str) -> None:
    click.secho(f"==> {text}", fg="cyan", err=True)


def _say(text: str) -> None:
    click.echo(f"    {text}", err=True)


@click.command()
@click.option(
    "--records",
    default=BATCH_RECORDS,
    show_default=True,
    help="Held-out records to score in the batch and the A/B test.",
)
@json_option
def demo(records: int) -> None:
    """Run the whole flow on embedded defaults: train, worker, batch, A/B test, decision.

    \b
        mlq demo
    """
    from producer.client import Client
    from producer.local_processes import LocalBeat, LocalWorker
    from shared.db.migrate import upgrade
    from shared.settings import get_settings

    settings = get_settings()
    started = time.monotonic()
    _step("configuration")
    for what, where in list(settings.describe().items())[:5]:
        _say(f"{what:<15} {where}")

    _step("migrating the database")
    upgrade()

    _step("training the models if they are missing")
    # The demo plays every role, the trainer's included: `mlq train`, run as its own
    # program like the worker and beat below (it needs the worker's ML stack).
    trained = subprocess.run(
        [sys.executable, "-m", "producer.cli", "train"], stdout=sys.stderr, check=False
    )
    if trained.returncode != 0:
        raise click.ClickException("`mlq train` failed (see above)")

    home = settings.home
    _step(f"starting a worker and beat (logs: {home}/demo-worker.log, demo-beat.log)")
    # The demo starts its A/B test and sends traffic at once: no registry cache delay.
    fresh = {"MLQ_REGISTRY_CACHE_SECONDS": "0", "MLQ_AB_CHECK_SECONDS": "1"}
    with (
        LocalWorker(log_path=home / "demo-worker.log", name="demo", env=fresh),
        LocalBeat(log_path=home / "demo-beat.log", env=fresh),
    ):
        client = Client()
        sample = _predict_sample(client)
        request_id = sample["request_id"]
        test, batch_id = _ab_test_on_a_batch(client, records)
        summary = _wait_for_beat(client, test["id"], test["arms"])
        _step("stopping the worker and beat")
    _step(f"done in {time.monotonic() - started:.0f}s; where to look next")
    _say(f"mlq result {request_id}        # the sample's stored result, any time later")
    _say(f"mlq batch results {batch_id} -o results.csv")
    _say(f"mlq ab show {test['id']} --plot ab.png   # the evidence, and a plot of it")
    _say("mlq algorithms                 # statuses after the test")
    _say("docs/cli.md, docs/operations.md: every command; Redis, PostgreSQL and Flower")
    if summary is None:
        raise click.ClickException("beat did not end the A/B test in time")
    done = {
        "request_id": request_id,
        "sample": sample,
        "batch_id": batch_id,
        "ab_test": test["id"],
        "decision": summary["text"],
    }
    emit(done, key_values({k: v for k, v in done.items() if k != "sample"}))


def _predict_sample(client: Any) -> dict[str, Any]:
    _step("predicting the tutorial's sample record through the queue")
    _say(json.dumps(EXAMPLE_RECORD))
    sent = time.monotonic()
    request_id = client.predict(EXAMPLE_RECORD, endpoint=DEFAULT_ENDPOINT)
    result = client.result(request_id, timeout=60)
    for line in human_result(result).splitlines():
        _say(line)
    _say(f"round trip {(time.monotonic() - sent) * 1000:.0f} ms")
    if result.get("status") != "OK":
        raise click.ClickException("the sample prediction did not succeed")
    return dict(result)


def _ab_test_on_a_batch(client: Any, records: int) -> tuple[dict[str, Any], str]:
    from producer.cli.batch import wait_for_batch
    from shared.db.engine import session_scope
    from shared.registry import list_algorithms

    held_out = _held_out(records)
    # An earlier demo may have promoted extra trees: the control is whatever is in production.
    with session_scope() as session:
        algorithms = list_algorithms(session, endpoint=DEFAULT_ENDPOINT)
    control = next(a.name for a in algorithms if a.name in TUTORIAL and a.status == "production")
    challenger = next(name for name in TUTORIAL if name != control)
    _step(f"A/B test: {control} (control, A) against {challenger} (B), {AB_SECONDS}s")
    test = client.start_ab_test(
        endpoint=DEFAULT_ENDPOINT,
        a=control,
        b=challenger,
        duration=timedelta(seconds=AB_SECONDS),
        min_labelled=200,
        created_by="mlq demo",
    )
    test["arms"] = {"A": control, "B": challenger}
    _say(f"test #{test['id']}: the endpoint's traffic is split 50/50 until {test['ends_at']}")
    _step(f"scoring {len(held_out)} held-out records as a batch through the split")
    features = [{k: v for k, v in row.items() if k != TARGET} for row in held_out]
    # Chunks of 100: rows get their chunk's time, so the test's plot has points to show.
    submission = client.submit_batch(features, source="demo", chunk_size=100)
    status = wait_for_batch(submission.batch_id, submission.total, timeout=300)
    _say(f"{status['ok']} scored, {status['failed']} failed, {status['rate_per_s']} records/s")
    _step("sending their true labels as feedback")
    outcome = client.feedback_many(
        zip(submission.request_ids, [row[TARGET] for row in held_out], strict=True), timeout=120
    )
    _say(f"{outcome['recorded']} labels recorded")
    return test, submission.batch_id


def _held_out(count: int) -> list[dict[str, Any]]:
    """The first ``count`` held-out rows `mlq train` wrote, with their true labels."""
    from producer.batch_input import csv_records
    from shared.settings import get_settings

    path = get_settings().artifacts_dir / DEFAULT_ENDPOINT / "holdout.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        return list(itertools.islice(csv_records(handle), count))


def _wait_for_beat(client: Any, test_id: int, arms: dict[str, str]) -> dict[str, Any] | None:
    _step("waiting for beat to end the test and decide")
    deadline = time.monotonic() + AB_SECONDS + 60
    while time.monotonic() < deadline:
        test = next(t for t in client.ab_tests() if t["id"] == test_id)
        if test["ended_at"]:
            report = client.ab_report(test_id)
            summary: dict[str, Any] = report["summary"]
            for arm, name in arms.items():
                stats = summary["evidence"]["arms"][arm]
                low, high = stats["accuracy_interval"] or (0.0, 0.0)
                _say(
                    f"arm {arm} ({name}): {stats['requests']} requests, {stats['labelled']} "
                    f"labelled, accuracy {stats['accuracy'] or 0:.4f} [{low:.4f}, {high:.4f}]"
                )
            _say(f"ended by {report['ended_by']}: {summary['text']}")
            return summary
        time.sleep(0.5)
    return None
