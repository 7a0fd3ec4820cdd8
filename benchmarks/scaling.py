"""Where the CPU goes, per record, and how throughput grows with worker processes.

Usage::

    .venv/bin/python -m benchmarks.scaling                    # 50,000 batch records, 2,000 singles
    .venv/bin/python -m benchmarks.scaling --records 20000 --singles 500 --processes 1,2

For single records (sent by 8 producer threads through `Client.predict`, each waited for)
and for a batch (`Client.submit_batch`, chunks of 5,000), the CPU seconds each part of the
system spent, divided by the records: the producer (this process), the broker (the
redis-server process), the workers (main process and pool processes) and PostgreSQL (every
`postgres` process of the machine's server: backends, WAL writer, checkpointer). CPU time
is read from /proc before and after, so it counts work, not waiting; it is only as clean as
the machine is quiet (other processes' PostgreSQL work counts too). Then the batch's
records/s with 1, 2, ... worker processes, against the machine's cores.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import harness
from benchmarks.batch_throughput import end_to_end, truncate_requests
from producer.client import Client
from shared.contracts import EXAMPLE_RECORD

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system time of a process, in seconds (0 for one that is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def family(pid: int) -> list[int]:
    """A process and its children (a worker and its pool)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [pid, *children]


class Meter:
    """CPU seconds spent by each part while ``measure`` is open, per process (a process
    that starts meanwhile counts from 0; one that ends is lost, so the parts measured
    are long-lived: pooled database connections, the worker's pool)."""

    def __init__(self, worker: harness.LocalWorker) -> None:
        assert worker.process is not None
        main = worker.process.pid
        self.parts: dict[str, Callable[[], list[int]]] = {
            "producer": lambda: [os.getpid()],
            "broker (redis-server)": lambda: pids_named("redis-server"),
            "workers": lambda: family(main),
            "PostgreSQL": lambda: pids_named("postgres"),
        }

    @contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        spent: dict[str, float] = {}
        before = {name: {p: cpu_seconds(p) for p in pids()} for name, pids in self.parts.items()}
        yield spent
        for name, pids in self.parts.items():
            spent[name] = sum(cpu_seconds(p) - before[name].get(p, 0.0) for p in pids())


def wal_lsn() -> int:
    """PostgreSQL's current WAL position, in bytes (what the whole server wrote)."""
    from sqlalchemy import text

    from shared.db.engine import get_engine

    with get_engine().connect() as connection:
        return int(
            connection.execute(text("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")).scalar_one()
        )


def storage() -> tuple[int, int, int, int]:
    """(rows, heap + TOAST bytes, index bytes, total bytes) of the request log, summed
    over its partitions (a partitioned table has no storage of its own)."""
    from sqlalchemy import text

    from shared.db.engine import get_engine

    with get_engine().connect() as connection:
        connection.execute(text("CHECKPOINT"))
        rows = connection.execute(text("SELECT count(*) FROM ml_request")).scalar_one()
        sizes = connection.execute(
            text(
                "SELECT coalesce(sum(pg_table_size(relid)), 0), "
                "coalesce(sum(pg_indexes_size(relid)), 0), "
                "coalesce(sum(pg_total_relation_size(relid)), 0) "
                "FROM pg_partition_tree('ml_request') WHERE isleaf"
            )
        ).one()
    return int(rows), int(sizes[0]), int(sizes[1]), int(sizes[2])


def singles(count: int, threads: int = 8) -> float:
    """``count`` predictions from ``threads`` producer threads; returns the seconds taken."""
    per_thread = count // threads

    def send() -> None:
        client = Client()  # one per thread: a Celery result consumer is not thread-safe
        for _ in range(per_thread):
            result = client.result(client.predict(EXAMPLE_RECORD), timeout=30)
            assert result["status"] == "OK", result

    started = time.perf_counter()
    workers = [threading.Thread(target=send) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--singles", type=int, default=2_000)
    parser.add_argument("--processes", default="1,2,3,4")
    args = parser.parse_args()

    harness.fresh_database()
    records = harness.adult_records(args.records)
    rows: list[tuple[Any, ...]] = []
    sizes: dict[str, tuple[int, int, int, int]] = {}
    with harness.worker("scaling", concurrency=2) as worker:
        meter = Meter(worker)
        singles(40)  # warm up: models used, connections open
        truncate_requests()
        wal = wal_lsn()
        with meter.measure() as spent:
            seconds = singles(args.singles)
        wal_single = (wal_lsn() - wal) / args.singles
        sizes["single records"] = storage()
        rows += [
            ("single records", part, 1000 * cpu / args.singles, args.singles / seconds)
            for part, cpu in spent.items()
        ]
        truncate_requests()
        wal = wal_lsn()
        with meter.measure() as spent:
            rate = end_to_end(records, None, 5000)
        wal_batch = (wal_lsn() - wal) / args.records
        sizes["batch records"] = storage()
        rows += [("batch", part, 1000 * cpu / args.records, rate) for part, cpu in spent.items()]
    harness.print_table(
        "CPU per record, by part (ms of CPU per record; records/s of the run)",
        ["work", "part", "CPU ms / record", "records/s"],
        rows,
    )
    harness.print_table(
        "Request log bytes per row (pg_table_size, pg_indexes_size and pg_total_relation_size "
        "of its partitions; WAL: pg_current_wal_lsn before and after, whole server)",
        ["rows", "count", "table (heap+TOAST)", "indexes", "total", "WAL written"],
        [
            (kind, n, heap / n, index / n, total / n, wal_per_row)
            for (kind, (n, heap, index, total)), wal_per_row in zip(
                sizes.items(), (wal_single, wal_batch), strict=True
            )
        ],
    )
    scaling = []
    for processes in (int(p) for p in args.processes.split(",")):
        with harness.worker(f"scaling-{processes}", concurrency=processes):
            truncate_requests()
            end_to_end(records[:5000], None, 5000)  # warm every pool process
            truncate_requests()
            scaling.append((processes, end_to_end(records, None, 5000)))
    base = scaling[0][1]
    harness.print_table(
        f"Batch records/s by worker processes ({os.cpu_count()} cores)",
        ["worker processes", "records/s", "ratio to 1"],
        [(p, rate, rate / base) for p, rate in scaling],
    )
    harness.drop_database()


if __name__ == "__main__":
    main()
