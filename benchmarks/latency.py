"""Single-record latency: the round trip of a prediction against a trivial echo task
through the same broker and worker, and the p99 while a large batch is being scored.

Usage::

    .venv/bin/python -m benchmarks.latency                       # 1,000 requests, 3 runs
    .venv/bin/python -m benchmarks.latency --requests 200 --runs 1 --batch-records 20000

Round trip = `Client.predict` then `Client.result(id, timeout=...)`, sequentially, one
at a time, against a worker with 2 processes; the echo baseline sends `mlq.echo` and
waits for its result the same way (Celery's result `get`).

Under load, single records and batches go to separate workers (the deployment the
README recommends): one process on the `predict` queue, two on `batch`. The same run
with one worker consuming both queues is shown for contrast.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import harness
from producer.client import Client
from shared.celery_app import app
from shared.contracts import EXAMPLE_RECORD, QUEUE_BATCH, QUEUES, TASK_ECHO

SINGLE_QUEUES = tuple(q for q in QUEUES if q != QUEUE_BATCH)


def echo_ms(count: int) -> list[float]:
    times = []
    for i in range(count):
        started = time.perf_counter()
        app.send_task(TASK_ECHO, args=[i]).get(timeout=10)
        times.append((time.perf_counter() - started) * 1000)
    return times


def predict_ms(client: Client, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        result = client.result(client.predict(EXAMPLE_RECORD), timeout=10)
        times.append((time.perf_counter() - started) * 1000)
        assert result["status"] == "OK", result
    return times


def write_batch_file(records: int) -> Path:
    import csv

    path = harness.HOME / f"batch-{records}.csv"
    rows = harness.adult_records(records)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def under_load(client: Client, batch_file: Path) -> tuple[list[float], float]:
    """Sequential single predictions for as long as a batch takes; and its duration."""
    started = time.perf_counter()
    batch = subprocess.Popen(
        [sys.executable, "-m", "producer.cli", "batch", "submit", str(batch_file), "--wait"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    times = []
    while batch.poll() is None:
        times.extend(predict_ms(client, 1))
    assert batch.returncode == 0, "the batch did not finish"
    return times, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-records", type=int, default=100_000)
    args = parser.parse_args()

    harness.fresh_database()
    client = Client()
    echo_p50, predict_p50, predict_p99 = [], [], []
    with harness.worker("latency", concurrency=2):
        predict_ms(client, 20)  # warm the pool's connections
        echo_ms(20)
        for _ in range(args.runs):
            echo = echo_ms(args.requests)
            predict = predict_ms(client, args.requests)
            echo_p50.append(harness.median(echo))
            predict_p50.append(harness.median(predict))
            predict_p99.append(harness.percentile(predict, 99))
    e, p = harness.median(echo_p50), harness.median(predict_p50)
    harness.print_table(
        f"Round trip, {args.requests} sequential requests, median of {args.runs} runs (ms)",
        ["task", "p50", "p99", "ratio to echo p50"],
        [
            ("mlq.echo", e, "", 1.0),
            ("mlq.predict (client.predict + client.result)", p, harness.median(predict_p99), p / e),
        ],
    )

    batch_file = write_batch_file(args.batch_records)
    rows = []
    with (
        harness.worker("single", concurrency=1, queues=SINGLE_QUEUES),
        harness.worker("batch", concurrency=2, queues=(QUEUE_BATCH,)),
    ):
        predict_ms(client, 20)
        times, seconds = under_load(client, batch_file)
        rows.append(
            (
                "separate workers: predict x1, batch x2",
                len(times),
                seconds,
                harness.median(times),
                harness.percentile(times, 99),
                max(times),
            )
        )
    with harness.worker("shared", concurrency=2):
        predict_ms(client, 20)
        times, seconds = under_load(client, batch_file)
        rows.append(
            (
                "one worker x2 on every queue",
                len(times),
                seconds,
                harness.median(times),
                harness.percentile(times, 99),
                max(times),
            )
        )
    harness.print_table(
        f"Single records while a {args.batch_records:,}-record batch is scored (ms)",
        ["deployment", "requests", "batch s", "p50", "p99", "max"],
        rows,
    )


if __name__ == "__main__":
    main()
