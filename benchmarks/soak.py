"""Soak: minutes of steady single records plus periodic batches against the production
layout, checking that nothing is lost or doubled and that worker memory stays flat.

Usage::

    .venv/bin/python -m benchmarks.soak                # 5 min, 50/s, 20,000 every 30 s
    .venv/bin/python -m benchmarks.soak --minutes 0.5  # a quick try

Two workers, as the README advises for production: ``single`` (queues predict, feedback,
control; 1 process) and ``batch`` (queue batch; 2 processes). Held-out Adult records
(the tutorial's 30% test split) go through the real `Client`:

- single records at a fixed rate (``--rate``), paced on an absolute schedule and spread
  over ``--threads`` senders (one `Client` each, sharing the process's Celery app) so
  that one slow round trip does not delay the next send; latency is `Client.predict`
  to `Client.result` (submit to result);
- a batch of ``--batch-records`` every ``--batch-every`` seconds, timed from the first
  record sent until the database holds a row for every record.

Errors are results with status ERROR, results not final within 30 s, exceptions, and
failed batch records. At the end, one query checks that every request id sent (warm-up
included) has exactly one `ml_request` row. Worker memory is the PSS of each worker's
parent plus its pool children (as `benchmarks.memory` measures it), sampled after a
warm-up that served a full batch, at every minute, and once all work has finished; end
must stay within ``start * --mem-ratio + --mem-slack-mib``. Its anonymous part (heap,
Pss_Anon) is shown beside it: the file-backed part of PSS (shared libraries) changes
when other processes on the machine map or unmap the same files, the heap does not, so
a leak shows there first.

Exits 1 if a row was lost or doubled or a worker's memory exceeded its bound. It uses
its own PostgreSQL database (``mlq_soak``, dropped at the end) and Redis databases 9 and
10, so it can run beside the other benchmarks and the tests.
"""

from __future__ import annotations

import os

# Before the harness is imported: it points every setting at these.
os.environ.setdefault("MLQ_BENCH_DATABASE", "mlq_soak")
os.environ.setdefault("MLQ_BENCH_REDIS_DBS", "9,10")

import argparse
import itertools
import math
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, INTEGER, TEXT
from sqlalchemy.exc import OperationalError

from benchmarks import harness
from benchmarks.memory import children
from producer.client import Client
from producer.local_processes import LocalWorker
from shared.contracts import QUEUE_BATCH, QUEUES
from shared.db.engine import get_engine

SINGLE_QUEUES = tuple(q for q in QUEUES if q != QUEUE_BATCH)
RESULT_TIMEOUT_S = 30.0
BATCH_POLL_S = 0.1
DRAIN_TIMEOUT_S = 300.0
MIB = 1024.0


@dataclass(frozen=True)
class Single:
    request_id: str
    sent_at: float  # seconds after the soak started
    latency_ms: float
    error: str | None


@dataclass
class Batch:
    batch_id: str
    records: int
    submitted_at: float  # seconds after the soak started
    sent_at: float  # submit_batch returned: every chunk is on the broker
    done_at: float | None = None
    failed: int = 0

    @property
    def seconds(self) -> float:
        assert self.done_at is not None
        return self.done_at - self.submitted_at


@dataclass
class Soak:
    """What the sender threads record, read by the main thread once they have stopped."""

    started: float
    seconds: float
    singles: list[Single] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    batch_ids: list[tuple[str, int]] = field(default_factory=list)
    batch_errors: list[str] = field(default_factory=list)  # submissions that raised
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.monotonic() - self.started


def held_out_records() -> list[dict[str, Any]]:
    """The tutorial's held-out test split, without its label: records no model trained on."""
    from workers.training import TARGET, split_adult

    records: list[dict[str, Any]] = split_adult().test.drop(columns=[TARGET]).to_dict("records")
    return records


def cycled(records: list[dict[str, Any]], count: int, offset: int = 0) -> list[dict[str, Any]]:
    return [records[(offset + i) % len(records)] for i in range(count)]


def send_singles(
    soak: Soak, first: int, step: int, rate: float, records: list[dict[str, Any]]
) -> None:
    """Send requests first, first + step, ... each at its slot ``i / rate`` (never early)."""
    client = Client()
    index = first
    while (due := index / rate) < soak.seconds:
        if (wait := due - soak.now()) > 0:
            time.sleep(wait)
        sent_at = soak.now()
        started = time.perf_counter()
        error: str | None = None
        request_id = str(uuid.uuid4())
        try:
            client.predict(records[index % len(records)], request_id=request_id)
            soak.request_ids.append(request_id)
            result = client.result(request_id, timeout=RESULT_TIMEOUT_S)
            if result["status"] != "OK":
                error = f"{result['status']}: {result.get('error')}"
        except Exception as exc:
            error = repr(exc)
        latency_ms = (time.perf_counter() - started) * 1000
        with soak.lock:
            soak.singles.append(Single(request_id, sent_at, latency_ms, error))
        index += step


def submit_batch(client: Client, soak: Soak, records: list[dict[str, Any]]) -> Batch:
    submitted_at = soak.now()
    submission = client.submit_batch(records, source="soak")
    batch = Batch(submission.batch_id, submission.total, submitted_at, soak.now())
    with soak.lock:
        soak.batches.append(batch)
        soak.batch_ids.append((submission.batch_id, submission.total))
    return batch


def poll_batches(client: Client, soak: Soak, until: float, *, drain: bool = False) -> None:
    """Record when each outstanding batch is done, until ``until`` (soak seconds), or with
    ``drain`` until none is outstanding."""
    while soak.now() < until:
        with soak.lock:
            pending = [b for b in soak.batches if b.done_at is None]
        if not pending and drain:
            return
        if not pending:
            time.sleep(max(0.0, min(BATCH_POLL_S, until - soak.now())))
            continue
        for batch in pending:
            try:
                status = client.batch_status(batch.batch_id)
            except OperationalError:  # the database is briefly away: ask again next time
                continue
            if status["state"] == "done":
                batch.failed = int(status["failed"])
                batch.done_at = soak.now()
        time.sleep(BATCH_POLL_S)


def send_batches(soak: Soak, every: float, size: int, records: list[dict[str, Any]]) -> None:
    """Submit a batch at 0, every, 2 * every, ... seconds; watch them finish in between."""
    client = Client()
    number = 0
    while (due := number * every) < soak.seconds:
        poll_batches(client, soak, until=due)
        try:
            submit_batch(client, soak, cycled(records, size, offset=number * size))
        except Exception as exc:
            soak.batch_errors.append(repr(exc))
        number += 1
    poll_batches(client, soak, until=soak.seconds)


class Memory(NamedTuple):
    """A worker's PSS and its anonymous part (Pss_Anon), parent plus children, in MiB."""

    pss: float
    anon: float


def worker_memory(worker: LocalWorker) -> Memory:
    """Summed over the worker's processes: shared model pages count once (PSS splits them)."""
    assert worker.process is not None
    parent = worker.process.pid
    totals = {"Pss:": 0, "Pss_Anon:": 0}
    for pid in (parent, *children(parent)):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name in totals:
                totals[name] += int(value.split()[0])
    return Memory(totals["Pss:"] / MIB, totals["Pss_Anon:"] / MIB)


def warm_up(soak: Soak, records: list[dict[str, Any]], batch_records: int) -> None:
    """Serve singles and one full batch first, so start memory includes working memory."""
    client = Client()
    for record in records[:200]:
        request_id = client.predict(record)
        soak.request_ids.append(request_id)
        client.result(request_id, timeout=RESULT_TIMEOUT_S)
    batch = submit_batch(client, soak, cycled(records, batch_records))
    poll_batches(client, soak, until=soak.now() + DRAIN_TIMEOUT_S, drain=True)
    assert batch.done_at is not None, "the warm-up batch did not finish"
    with soak.lock:
        soak.batches.clear()


def count_rows(soak: Soak) -> tuple[int, int, int, int]:
    """(expected, lost, doubled, unexpected) in one query over every id sent.

    Batch ids are expanded in the database (``batch_id:position``), so the query carries
    one list of single ids and one of batches, not every batch record's id.
    """
    query = text(
        """
        WITH sent AS (
            SELECT unnest(CAST(:singles AS text[])) AS id
            UNION ALL
            SELECT b.id || ':' || p
            FROM unnest(CAST(:batches AS text[]), CAST(:totals AS int[])) AS b(id, total),
                 generate_series(0, b.total - 1) AS p
        ), per_id AS (
            SELECT sent.id, count(r.id) AS rows
            FROM sent LEFT JOIN ml_request r ON r.id = sent.id
            GROUP BY sent.id
        )
        SELECT count(*),
               count(*) FILTER (WHERE rows = 0),
               count(*) FILTER (WHERE rows > 1),
               (SELECT count(*) FROM ml_request) - count(*) FILTER (WHERE rows > 0)
        FROM per_id
        """
    ).bindparams(
        bindparam("singles", type_=ARRAY(TEXT)),
        bindparam("batches", type_=ARRAY(TEXT)),
        bindparam("totals", type_=ARRAY(INTEGER)),
    )
    with get_engine().connect() as connection:
        row = connection.execute(
            query,
            {
                "singles": list(soak.request_ids),
                "batches": [b for b, _ in soak.batch_ids],
                "totals": [n for _, n in soak.batch_ids],
            },
        ).one()
    expected, lost, doubled, unexpected = (int(v) for v in row)
    return expected, lost, doubled, unexpected


def latency_cells(singles: list[Single]) -> list[float | str]:
    times = [s.latency_ms for s in singles]
    if not times:
        return ["", "", "", ""]
    cells: list[float | str] = [harness.percentile(times, q) for q in (50, 95, 99)]
    return [*cells, max(times)]


def batch_rate(batches: list[Batch]) -> float | str:
    seconds = sum(b.seconds for b in batches)
    return sum(b.records for b in batches) / seconds if seconds else ""


def anon_slope(samples: list[Memory]) -> float | str:
    """Heap growth per minute: the median of the minute-to-minute changes between the
    minute samples. A steady leak shows here although a few minutes cannot reach the
    start-to-end bound; the median ignores a one-off step, such as the copy-on-write
    pages a garbage collection un-shares between a worker's parent and a child."""
    minutes = [m.anon for m in samples[1:-1]]
    if len(minutes) < 3:
        return ""
    return statistics.median(b - a for a, b in itertools.pairwise(minutes))


@dataclass(frozen=True)
class MemoryBound:
    """How much a worker's PSS may grow: ``end <= start * ratio + slack_mib``.

    A worker must be allowed one-off growth: caches and connections that fill in the
    first minutes (the slack), and copy-on-write pages a garbage collection un-shares
    between the parent and a child, which grows with the models' size (the ratio; about
    45 MiB, 6%, measured here). A steady leak is better read from the heap's MiB/min.
    """

    ratio: float
    slack_mib: float

    def limit(self, start: float) -> float:
        return start * self.ratio + self.slack_mib


def minute_rows(soak: Soak, memory: dict[str, list[Memory]]) -> list[list[Any]]:
    """One row per minute: singles sent in it, batches finished in it, PSS at its end."""
    minutes = len(next(iter(memory.values()))) - 1
    table = []
    for minute in range(minutes):
        length = min(60.0, soak.seconds - 60 * minute)
        singles = [s for s in soak.singles if min(int(s.sent_at // 60), minutes - 1) == minute]
        done = [
            b
            for b in soak.batches
            if b.done_at is not None and min(int(b.done_at // 60), minutes - 1) == minute
        ]
        table.append(
            [
                minute + 1,
                len(singles),
                len(singles) / length,
                *latency_cells(singles),
                sum(s.error is not None for s in singles) + sum(b.failed for b in done),
                len(done),
                batch_rate(done),
                *(samples[minute + 1].pss for samples in memory.values()),
                *(samples[minute + 1].anon for samples in memory.values()),
            ]
        )
    return table


def report(
    soak: Soak,
    rate: float,
    memory: dict[str, list[Memory]],
    rows: tuple[int, int, int, int],
    bound: MemoryBound,
) -> list[str]:
    """Print the per-minute, summary and memory tables; return what failed (empty: passed)."""
    harness.print_table(
        f"Soak, per minute (single records at {rate:g}/s target; latency ms, submit to "
        "result; PSS and its anonymous part in MiB at the minute's end, the last once all "
        "work finished)",
        [
            "minute",
            "singles",
            "rate/s",
            "p50",
            "p95",
            "p99",
            "max",
            "errors",
            "batches done",
            "batch rec/s",
            *(f"PSS {name}" for name in memory),
            *(f"anon {name}" for name in memory),
        ],
        minute_rows(soak, memory),
    )
    done = [b for b in soak.batches if b.done_at is not None]
    errors = [s.error for s in soak.singles if s.error is not None]
    # OK, but only after Client.result's wait ran out: the worker had answered, the
    # client's wait for the answer did not see it (the result read after it did).
    late = [s for s in soak.singles if s.error is None and s.latency_ms >= 1000 * RESULT_TIMEOUT_S]
    expected, lost, doubled, unexpected = rows
    p50, p95, p99, worst = (
        f"{v:.1f}" if isinstance(v, float) else v for v in latency_cells(soak.singles)
    )
    harness.print_table(
        f"Soak summary ({soak.seconds / 60:g} min)",
        ["figure", "value"],
        [
            ("single records sent", len(soak.singles)),
            ("single rate achieved, /s", len(soak.singles) / soak.seconds),
            ("single latency p50 / p95 / p99 / max, ms", f"{p50} / {p95} / {p99} / {worst}"),
            ("batches submitted / done", f"{len(soak.batches)} / {len(done)}"),
            ("batch records", sum(b.records for b in soak.batches)),
            ("batch records/s (records / batch seconds)", batch_rate(done)),
            (
                "batch seconds, median (of which sending)",
                f"{harness.median([b.seconds for b in done]):.2f} "
                f"({harness.median([b.sent_at - b.submitted_at for b in done]):.2f})"
                if done
                else "",
            ),
            ("errors: single / batch records", f"{len(errors)} / {sum(b.failed for b in done)}"),
            (f"singles OK only after the {RESULT_TIMEOUT_S:g} s wait ran out", len(late)),
            ("batch submissions that raised", len(soak.batch_errors)),
            ("request ids sent (warm-up included)", expected),
            ("rows lost", lost),
            ("rows doubled", doubled),
            ("rows not sent by the soak", unexpected),
        ],
    )
    for error in sorted(set(errors + soak.batch_errors))[:5]:
        print(f"  error: {error} (x{(errors + soak.batch_errors).count(error)})")
    for single in late[:5]:
        print(f"  late: request {single.request_id} sent at {single.sent_at:.1f} s")

    failures = [f"{lost} rows lost"] * bool(lost) + [f"{doubled} rows doubled"] * bool(doubled)
    memory_rows = []
    for name, samples in memory.items():
        (start, start_anon), (end, end_anon) = samples[0], samples[-1]
        limit = bound.limit(start)
        verdict = "PASS" if end <= limit else "FAIL"
        memory_rows.append(
            (
                name,
                start,
                end,
                end - start,
                100 * (end - start) / start,
                limit,
                verdict,
                f"{start_anon:.0f} -> {end_anon:.0f} ({end_anon - start_anon:+.1f})",
                anon_slope(samples),
            )
        )
        if verdict == "FAIL":
            failures.append(f"worker {name}: {end:.0f} MiB above its bound of {limit:.0f} MiB")
    harness.print_table(
        f"Worker memory, PSS MiB (bound: end <= start * {bound.ratio:g} + {bound.slack_mib:g})",
        [
            "worker",
            "start",
            "end",
            "growth MiB",
            "growth %",
            "bound",
            "verdict",
            "anon (heap)",
            "anon MiB/min",
        ],
        memory_rows,
    )
    return failures


def sample(workers: dict[str, LocalWorker], memory: dict[str, list[Memory]]) -> None:
    for name, worker in workers.items():
        memory[name].append(worker_memory(worker))


def wait_for_rows(soak: Soak) -> tuple[int, int, int, int]:
    """Count rows until none is missing or the drain time is up (a timed-out single may
    still be written late: missing only counts as lost once the workers had time)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        rows = count_rows(soak)
        if rows[1] == 0 or time.monotonic() > deadline:
            return rows
        time.sleep(2)


def run(args: argparse.Namespace) -> list[str]:
    records = held_out_records()
    soak = Soak(started=time.monotonic(), seconds=args.minutes * 60)
    memory: dict[str, list[Memory]] = {"single": [], "batch": []}
    with (
        harness.worker("single", concurrency=1, queues=SINGLE_QUEUES) as single,
        harness.worker("batch", concurrency=2, queues=(QUEUE_BATCH,)) as batch,
    ):
        workers = {"single": single, "batch": batch}
        warm_up(soak, records, args.batch_records)
        sample(workers, memory)
        soak.started = time.monotonic()
        threads = [
            threading.Thread(
                target=send_singles, args=(soak, k, args.threads, args.rate, records), daemon=True
            )
            for k in range(args.threads)
        ]
        threads.append(
            threading.Thread(
                target=send_batches,
                args=(soak, args.batch_every, args.batch_records, records),
                daemon=True,
            )
        )
        for thread in threads:
            thread.start()
        for minute in range(1, math.ceil(soak.seconds / 60)):
            time.sleep(max(0.0, 60 * minute - soak.now()))
            sample(workers, memory)
            print(
                f"minute {minute}: {len(soak.singles)} singles, {len(soak.batches)} batches",
                file=sys.stderr,
                flush=True,
            )
        for thread in threads:
            thread.join()
        client = Client()
        poll_batches(client, soak, until=soak.now() + DRAIN_TIMEOUT_S, drain=True)
        rows = wait_for_rows(soak)
        sample(workers, memory)
    bound = MemoryBound(args.mem_ratio, args.mem_slack_mib)
    return report(soak, args.rate, memory, rows, bound)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=50.0, help="single records per second")
    parser.add_argument("--threads", type=int, default=4, help="single-record senders")
    parser.add_argument("--batch-every", type=float, default=30.0, help="seconds")
    parser.add_argument("--batch-records", type=int, default=20_000)
    parser.add_argument("--mem-ratio", type=float, default=1.10)
    parser.add_argument("--mem-slack-mib", type=float, default=20.0)
    args = parser.parse_args()
    harness.fresh_database()
    try:
        failures = run(args)
    finally:
        harness.drop_database()
    print(f"\nlogs: {harness.HOME}")
    if failures:
        print("FAIL: " + "; ".join(failures))
        sys.exit(1)
    print("PASS: no row lost or doubled, worker memory within its bound")


if __name__ == "__main__":
    main()
