"""Worker memory: total PSS of a worker with 2 pool processes against one with 1, both
models loaded (PSS splits shared pages between the processes that map them, so pages
the children share with their parent count once in the total).

Usage::

    .venv/bin/python -m benchmarks.memory
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks import harness
from producer.client import Client
from shared.contracts import EXAMPLE_RECORD


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Pss in /proc/{pid}/smaps_rollup")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def worker_pss(concurrency: int, records: list[dict[str, object]]) -> tuple[int, int, int]:
    """(total, parent, children) PSS in KiB after every child has served both models."""
    client = Client()
    with harness.worker(f"memory-{concurrency}", concurrency=concurrency) as worker:
        for status in ("production", "testing"):
            submission = client.submit_batch(records, status=status, chunk_size=2000)
            for _ in range(100):
                client.result(client.predict(EXAMPLE_RECORD, status=status), timeout=10)
            while client.batch_status(submission.batch_id)["state"] != "done":
                time.sleep(0.1)
        assert worker.process is not None
        parent = worker.process.pid
        kids = children(parent)
        assert len(kids) == concurrency, kids
        parent_pss, kid_pss = pss_kib(parent), sum(pss_kib(k) for k in kids)
        return parent_pss + kid_pss, parent_pss, kid_pss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    harness.fresh_database()
    records = harness.adult_records(args.records)
    one = worker_pss(1, records)
    two = worker_pss(2, records)
    mib = 1024
    harness.print_table(
        "Worker memory after serving both models (PSS, MiB)",
        ["pool processes", "total", "parent", "children", "ratio to 1 process"],
        [
            (1, one[0] / mib, one[1] / mib, one[2] / mib, 1.0),
            (2, two[0] / mib, two[1] / mib, two[2] / mib, two[0] / one[0]),
        ],
    )


if __name__ == "__main__":
    main()
