"""What every benchmark shares: its own PostgreSQL database and Redis databases, trained
models, worker processes, and a table printer.

Import this module before any mlqueue module: it points the settings at the benchmark's
own services. Override with MLQ_BENCH_POSTGRES_ADMIN_URL and MLQ_BENCH_REDIS_URL, and
with MLQ_BENCH_DATABASE and MLQ_BENCH_REDIS_DBS (broker,backend) so that a benchmark
can run beside another one without sharing its database or Redis databases.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ADMIN_URL = os.environ.get(
    "MLQ_BENCH_POSTGRES_ADMIN_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
)
DATABASE = os.environ.get("MLQ_BENCH_DATABASE", "mlq_bench")
REDIS_URL = os.environ.get("MLQ_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
REDIS_DBS = tuple(int(db) for db in os.environ.get("MLQ_BENCH_REDIS_DBS", "11,12").split(","))
HOME = Path(tempfile.mkdtemp(prefix="mlq-bench-"))

os.environ.update(
    MLQ_HOME=str(HOME),
    MLQ_DATABASE_URL=ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}",
    MLQ_BROKER_URL=f"{REDIS_URL}/{REDIS_DBS[0]}",
    MLQ_RESULT_BACKEND=f"{REDIS_URL}/{REDIS_DBS[1]}",
)

import redis  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from producer.local_processes import LocalWorker  # noqa: E402
from shared.contracts import QUEUES  # noqa: E402


def fresh_database() -> None:
    """Drop and recreate the benchmark database, migrate it, train and register models."""
    from shared.db.engine import get_engine
    from shared.db.migrate import upgrade
    from shared.settings import get_settings
    from workers.training import register_builtin, train_missing

    get_engine().dispose()
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{DATABASE}"'))
    admin.dispose()
    for db in REDIS_DBS:
        redis.Redis.from_url(f"{REDIS_URL}/{db}").flushdb()
    upgrade()
    register_builtin(train_missing(get_settings().artifacts_dir), created_by="benchmark")


def drop_database() -> None:
    """Drop the benchmark database and empty its Redis databases: leave nothing behind."""
    from shared.db.engine import get_engine

    get_engine().dispose()
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    admin.dispose()
    for db in REDIS_DBS:
        redis.Redis.from_url(f"{REDIS_URL}/{db}").flushdb()


@contextmanager
def worker(name: str, concurrency: int, queues: tuple[str, ...] = QUEUES) -> Iterator[LocalWorker]:
    process = LocalWorker(
        log_path=HOME / f"{name}.log", concurrency=concurrency, queues=queues, name=name
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def adult_records(count: int) -> list[dict[str, Any]]:
    """``count`` records of the Adult data (cycled), as a producer would send them."""
    from workers.training import ADULT_DATA, TARGET, read_adult

    rows = read_adult(ADULT_DATA).drop(columns=[TARGET]).to_dict("records")
    return [rows[i % len(rows)] for i in range(count)]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [list(map(str, header))] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}\n")
    for index, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return str(value)
