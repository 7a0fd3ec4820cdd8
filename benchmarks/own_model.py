"""A user's model against the built-in one, in the same run: batch throughput end to end
and single-record latency, through the same broker and worker; and how long a new
version takes from `mlq models add` to being served by every worker.

Usage::

    .venv/bin/python -m benchmarks.own_model                       # 3 runs
    .venv/bin/python -m benchmarks.own_model --records 20000 --requests 200 --runs 1

The user's model is a scikit-learn pipeline on the Adult data: one-hot encoding of
three categorical columns, scaling of two numbers, logistic regression over a person's
relationship in the household (six classes). It is registered with `register_model`,
exactly as a user would from a notebook.

Rollout: two workers (one pool process each) serve version 1 of a model; the clock
starts when `mlq models add` starts registering version 2 as production (schema
inference, ONNX conversion and its check included) and stops, per worker, at the first
answer from version 2, asked through a queue only that worker consumes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.batch_throughput import end_to_end, truncate_requests
from producer.client import Client
from shared.celery_app import app
from shared.contracts import DEFAULT_ENDPOINT, EXAMPLE_RECORD, TASK_PREDICT

USER_ENDPOINT = "relationship"


def register_user_model(count: int) -> list[dict[str, Any]]:
    """Register the pipeline; return ``count`` records for it."""
    from examples.user_models import RELATIONSHIP_FEATURES, relationship
    from workers.registration import register_model

    model, features, _ = relationship()
    register_model(
        model,
        endpoint=USER_ENDPOINT,
        name="one-hot logistic",
        version="1",
        sample=features.head(300),
        status="production",
        created_by="benchmark",
    )
    return [{k: r[k] for k in RELATIONSHIP_FEATURES} for r in harness.adult_records(count)]


def latency_ms(client: Client, record: dict[str, Any], endpoint: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        result = client.result(client.predict(record, endpoint=endpoint), timeout=10)
        times.append((time.perf_counter() - started) * 1000)
        assert result["status"] == "OK", result
    return times


def rollout_seconds(workdir: Path) -> tuple[float, list[float]]:
    """(registration time, time to the first answer from the new version per worker)."""
    import skops.io as sio

    from examples.user_models import iris

    model, features, _ = iris(n_estimators=50, seed=0)
    features.head(120).to_csv(workdir / "sample.csv", index=False)
    sio.dump(model, workdir / "v1.skops")
    sio.dump(iris(n_estimators=50, seed=1)[0], workdir / "v2.skops")
    add = [sys.executable, "-m", "producer.cli", "models", "add"]
    where = ["--endpoint", "iris", "--name", "forest", "--sample", str(workdir / "sample.csv")]
    subprocess.run(
        [*add, str(workdir / "v1.skops"), *where, "--version", "1", "--status", "production"],
        check=True,
        capture_output=True,
    )
    record = features.iloc[0].to_dict()
    with (
        harness.worker("roll-1", concurrency=1) as one,
        harness.worker("roll-2", concurrency=1) as two,
    ):
        for worker in (one, two):  # each serves version 1 before the clock starts
            answer = app.send_task(
                TASK_PREDICT,
                kwargs={"record": record, "endpoint": "iris"},
                queue=worker.private_queue,
            ).get(timeout=30)
            assert answer["algorithm"]["version"] == "1", answer
        started = time.perf_counter()
        subprocess.run(
            [*add, str(workdir / "v2.skops"), *where, "--version", "2", "--status", "production"],
            check=True,
            capture_output=True,
        )
        registered = time.perf_counter() - started
        served = []
        for worker in (one, two):
            while True:
                answer = app.send_task(
                    TASK_PREDICT,
                    kwargs={"record": record, "endpoint": "iris"},
                    queue=worker.private_queue,
                ).get(timeout=30)
                if answer["algorithm"]["version"] == "2":
                    served.append(time.perf_counter() - started)
                    break
                time.sleep(0.05)
    return registered, served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    harness.fresh_database()
    user_records = register_user_model(args.records)
    builtin_records = harness.adult_records(args.records)
    user_record = user_records[0]
    throughput: dict[str, list[float]] = {"built-in": [], "user": []}
    latency: dict[str, list[float]] = {"built-in": [], "user": []}
    with harness.worker("own-model", concurrency=2):
        client = Client()
        latency_ms(client, EXAMPLE_RECORD, DEFAULT_ENDPOINT, 20)  # warm both models up
        latency_ms(client, user_record, USER_ENDPOINT, 20)
        for _ in range(args.runs):
            truncate_requests()
            throughput["built-in"].append(end_to_end(builtin_records, None, 5000))
            truncate_requests()
            throughput["user"].append(end_to_end(user_records, None, 5000, USER_ENDPOINT))
            latency["built-in"].append(
                harness.median(latency_ms(client, EXAMPLE_RECORD, DEFAULT_ENDPOINT, args.requests))
            )
            latency["user"].append(
                harness.median(latency_ms(client, user_record, USER_ENDPOINT, args.requests))
            )
    base_rate, base_p50 = (
        harness.median(throughput["built-in"]),
        harness.median(latency["built-in"]),
    )
    harness.print_table(
        f"A user's pipeline against the built-in random forest, median of {args.runs} runs",
        ["model", "batch records/s", "ratio", "single p50 ms", "ratio"],
        [
            ("built-in random forest", base_rate, 1.0, base_p50, 1.0),
            (
                "user: one-hot + logistic",
                harness.median(throughput["user"]),
                harness.median(throughput["user"]) / base_rate,
                harness.median(latency["user"]),
                harness.median(latency["user"]) / base_p50,
            ),
        ],
    )
    registrations, first_served = [], []
    with tempfile.TemporaryDirectory() as workdir:
        for _ in range(args.runs):
            harness.fresh_database()
            registered, served = rollout_seconds(Path(workdir))
            registrations.append(registered)
            first_served.append(max(served))
    harness.print_table(
        "From `mlq models add` to version 2 served by both workers, "
        f"median of {args.runs} runs (s)",
        ["registration (add command)", "served by every worker", "after registration"],
        [
            (
                harness.median(registrations),
                harness.median(first_served),
                harness.median([s - r for s, r in zip(first_served, registrations, strict=True)]),
            )
        ],
    )


if __name__ == "__main__":
    main()
