"""Batch throughput: end to end through Redis and 2 worker processes, against the ceiling
of the same work in one process without a queue, and against the tutorial's way.

Usage::

    .venv/bin/python -m benchmarks.batch_throughput                 # 100,000 records, 3 runs
    .venv/bin/python -m benchmarks.batch_throughput --records 20000 --runs 1
    .venv/bin/python -m benchmarks.batch_throughput --chunk-sizes 500,1000,2000,5000
    .venv/bin/python -m benchmarks.batch_throughput --million --runs 3   # 1,000,000 records

- lean ceiling: the least the work can be, in this process: validation, preprocessing
  and predict_proba per 10,000 records, COPY of (id, label, probability) to a temp table.
- ceiling, same rows: the records scored in this process by the workers' own chunk code
  (vectorised validation and preprocessing, one predict_proba and one COPY per 10,000
  records), no queue, no Celery.
- end to end: `Client.submit_batch` to a worker with 2 processes, timed from the first
  record sent until the database holds a row for every record.
- tutorial way, on a sample, in this process: per record a one-row DataFrame, the
  model's own encoders and scikit-learn's predict_proba, one INSERT and COMMIT. It skips
  the tutorial's HTTP (and our queue), so it flatters the tutorial.
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

from benchmarks import harness
from producer.client import Client
from shared.contracts import DEFAULT_CHUNK_SIZE, DEFAULT_ENDPOINT
from shared.db.batches import batch_progress
from shared.db.engine import get_engine, session_scope
from shared.settings import get_settings

ALGORITHMS = {"random forest": "production", "extra trees": "testing"}
CEILING_CHUNK = 10_000


def truncate_requests() -> None:
    from sqlalchemy import text

    with get_engine().begin() as connection:
        connection.execute(text("TRUNCATE ml_request, batch"))


def served_model(status: str) -> Any:
    """The built-in model a worker would serve for ``status``, loaded as a worker loads it."""
    from shared.registry import select_algorithm
    from workers.model_cache import ModelCache
    from workers.model_store import ModelStore

    settings = get_settings()
    assert settings.model_cache is not None
    with session_scope() as session:
        algorithm = select_algorithm(session, endpoint=DEFAULT_ENDPOINT, status=status)
    return ModelStore(ModelCache(settings.model_cache)).get(algorithm)


def ceiling(records: list[dict[str, Any]], status: str) -> float:
    from shared.registry_cache import RegistryCache
    from workers.batch_serving import serve_chunk
    from workers.model_cache import ModelCache
    from workers.model_store import ModelStore

    settings = get_settings()
    assert settings.model_cache is not None
    registry = RegistryCache(settings.registry_cache_s)
    store = ModelStore(ModelCache(settings.model_cache))
    served_model(status)  # the model file fetched into the cache: not timed
    batch_id = uuid.uuid4().hex
    started = time.perf_counter()
    for start in range(0, len(records), CEILING_CHUNK):
        serve_chunk(
            store,
            registry,
            batch_id=batch_id,
            endpoint=DEFAULT_ENDPOINT,
            start=start,
            records=records[start : start + CEILING_CHUNK],
            status=status,
        )
    return len(records) / (time.perf_counter() - started)


def lean_ceiling(records: list[dict[str, Any]], status: str) -> float:
    """The least the work can be: predict and COPY (id, label, probability) to a temp table."""
    model = served_model(status)
    started = time.perf_counter()
    with session_scope() as session:
        cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(
            "CREATE TEMP TABLE lean (id text, label text, probability float8) ON COMMIT DROP"
        )
        for start in range(0, len(records), CEILING_CHUNK):
            chunk = model.schema.validate_many(records[start : start + CEILING_CHUNK])
            prediction = model.predictor.predict(chunk.columns)
            best = prediction.probabilities.max(axis=1)
            with cursor.copy("COPY lean (id, label, probability) FROM STDIN") as copy:
                for i, (label, p) in enumerate(zip(prediction.labels, best, strict=True)):
                    copy.write_row((f"lean:{start + i}", label, float(p)))
    return len(records) / (time.perf_counter() - started)


def end_to_end(
    records: list[dict[str, Any]],
    status: str | None,
    chunk_size: int,
    endpoint: str = DEFAULT_ENDPOINT,
) -> float:
    """Records/s from the first record sent until every chunk's rows are committed.

    The end is each chunk task's result (stored by the worker after its rows commit),
    awaited in the result backend: polling the batch's row count instead cost
    PostgreSQL a count over the batch's rows every 50 ms, CPU taken from the run it
    measured (a fifth of a core at 100,000 records, more as the batch grows). The
    database is checked afterwards: a row for every record, none failed.
    """
    client = Client()
    started = time.perf_counter()
    submission = client.submit_batch(
        records, endpoint=endpoint, status=status, chunk_size=chunk_size
    )
    for start in range(0, len(records), chunk_size):
        client.app.AsyncResult(f"{submission.batch_id}:chunk:{start}").get(timeout=600)
    elapsed = time.perf_counter() - started
    with session_scope() as session:
        progress = batch_progress(session, batch_id=submission.batch_id)
    assert progress is not None and progress.finished, progress
    assert progress.failed == 0, progress
    return len(records) / elapsed


def tutorial_way(records: list[dict[str, Any]]) -> float:
    """Per record: a one-row DataFrame, scikit-learn's predict_proba on the pipeline (its
    encoders included), one INSERT and COMMIT."""
    import pandas as pd
    from sqlalchemy.orm import Session

    from shared.db.models import MLRequest
    from workers.bundles import Bundle, bundle_dir
    from workers.model_files import load_estimator

    folder = bundle_dir(get_settings().artifacts_dir, DEFAULT_ENDPOINT, "random forest", "0.0.1")
    estimator = load_estimator(Bundle.load(folder).source, "pickle")
    engine = get_engine()
    started = time.perf_counter()
    for record in records:
        proba = estimator.predict_proba(pd.DataFrame(record, index=[0]))[0]
        label = ">50K" if proba[1] > 0.5 else "<=50K"
        with Session(engine) as session:
            session.add(
                MLRequest(
                    id=str(uuid.uuid4()),
                    endpoint=DEFAULT_ENDPOINT,
                    input=record,
                    response={"label": label, "probability": float(proba[1])},
                    label=label,
                    probability=float(proba[1]),
                    status="OK",
                )
            )
            session.commit()
    return len(records) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk-sizes", default=str(DEFAULT_CHUNK_SIZE))
    parser.add_argument("--tutorial-sample", type=int, default=500)
    parser.add_argument(
        "--algorithms",
        default=",".join(ALGORITHMS),
        help="which built-in models, comma-separated (default: both)",
    )
    parser.add_argument(
        "--million",
        action="store_true",
        help="1,000,000 records, random forest only: the time and records/s of the whole "
        "batch beside both ceilings (same as --records 1000000 --algorithms 'random forest')",
    )
    args = parser.parse_args()
    if args.million:
        args.records, args.algorithms = 1_000_000, "random forest"
    chunk_sizes = [int(c) for c in args.chunk_sizes.split(",")]
    algorithms = {name: ALGORITHMS[name] for name in args.algorithms.split(",")}

    harness.fresh_database()
    records = harness.adult_records(args.records)
    rows = []
    with harness.worker("batch", concurrency=2):
        for name, status in algorithms.items():
            ceilings, leans, e2e = [], [], {c: [] for c in chunk_sizes}
            for _ in range(args.runs):
                truncate_requests()
                ceilings.append(ceiling(records, status))
                leans.append(lean_ceiling(records, status))
                for chunk_size in chunk_sizes:
                    truncate_requests()
                    e2e[chunk_size].append(end_to_end(records, status, chunk_size))
            top, lean = harness.median(ceilings), harness.median(leans)
            for chunk_size in chunk_sizes:
                rates = e2e[chunk_size]
                # Ratios within each run (the machine drifts between runs), then their median.
                to_top = [r / c for r, c in zip(rates, ceilings, strict=True)]
                to_lean = [r / c for r, c in zip(rates, leans, strict=True)]
                rate = harness.median(rates)
                rows.append(
                    (
                        name,
                        chunk_size,
                        lean,
                        top,
                        rate,
                        args.records / rate,
                        harness.median(to_top),
                        harness.median(to_lean),
                        " ".join(f"{r:.2f}" for r in to_lean),
                    )
                )
    harness.print_table(
        f"Batch throughput, {args.records:,} records, median of {args.runs} runs (records/s)",
        [
            "algorithm",
            "chunk",
            "lean ceiling",
            "ceiling, same rows",
            "end to end, 2 proc.",
            "end to end, s",
            "e2e / ceiling",
            "e2e / lean",
            "e2e / lean, each run",
        ],
        rows,
    )
    if args.tutorial_sample and "random forest" in algorithms:
        tutorial = tutorial_way(records[: args.tutorial_sample])
        best_rf = max(r[4] for r in rows if r[0] == "random forest")
        harness.print_table(
            f"Against the tutorial's way ({args.tutorial_sample} records, random forest)",
            ["path", "records/s", "speed-up"],
            [
                ("tutorial way, 1 process", tutorial, 1.0),
                ("mlqueue batch, end to end", best_rf, best_rf / tutorial),
            ],
        )


if __name__ == "__main__":
    main()
