"""Worker memory: total PSS of a worker with 2 pool processes against one with 1, both
models loaded (PSS splits shared pages between the processes that map them, so pages
the children share with their parent count once in the total); then again after a third
model was registered while the worker ran (its main process loads it and recycles the
pool, so the children share it too).

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


Sizes = tuple[int, int, int]
ADDED = {"status": "staging", "version": "0.0.2"}


def use(client: Client, records: list[dict[str, object]], **selection: str) -> None:
    """Every pool process serves the model: a batch in small chunks, and single records."""
    submission = client.submit_batch(records, chunk_size=2000, **selection)
    for _ in range(100):
        client.result(client.predict(EXAMPLE_RECORD, **selection), timeout=30)
    while client.batch_status(submission.batch_id)["state"] != "done":
        time.sleep(0.1)


def measure(worker: harness.LocalWorker, concurrency: int) -> Sizes:
    assert worker.process is not None
    parent = worker.process.pid
    kids = children(parent)
    assert len(kids) == concurrency, kids
    parent_pss, kid_pss = pss_kib(parent), sum(pss_kib(k) for k in kids)
    return parent_pss + kid_pss, parent_pss, kid_pss


def register_third_model() -> None:
    """A random forest like the built-in one (another random state): a model as large."""
    from sklearn.ensemble import RandomForestClassifier

    from workers.registration import register_model
    from workers.training import TARGET, categorical_columns, income_pipeline, split_adult

    split = split_adult()
    model = income_pipeline(
        RandomForestClassifier(n_estimators=100, random_state=7, n_jobs=-1),
        categorical_columns(split.train),
    ).fit(split.train.drop(columns=[TARGET]), split.train[TARGET])
    model.set_params(classify__n_jobs=None)
    register_model(
        model,
        endpoint="income_classifier",
        name="random forest",
        sample=split.train.drop(columns=[TARGET]).head(500),
        created_by="benchmark",
        **ADDED,
    )


def worker_pss(concurrency: int, records: list[dict[str, object]]) -> tuple[Sizes, Sizes]:
    """(total, parent, children) PSS in KiB after every child has served both models, and
    after a third one was registered and served."""
    client = Client()
    with harness.worker(f"memory-{concurrency}", concurrency=concurrency) as worker:
        for status in ("production", "testing"):
            use(client, records, status=status)
        before = measure(worker, concurrency)
        register_third_model()
        log = worker.log_path
        deadline = time.monotonic() + 120
        while "recycling pool processes" not in log.read_text():
            assert time.monotonic() < deadline, "the worker never loaded the new model"
            time.sleep(0.5)
        time.sleep(2)  # the recycled pool processes start
        for selection in ({"status": "production"}, {"status": "testing"}, ADDED):
            use(client, records, **selection)
        return before, measure(worker, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    records = harness.adult_records(args.records)
    harness.fresh_database()
    one, one_after = worker_pss(1, records)
    harness.fresh_database()
    two, two_after = worker_pss(2, records)
    mib = 1024
    harness.print_table(
        "Worker memory (PSS, MiB): both models served, then a third registered while running",
        ["models", "pool processes", "total", "parent", "children", "ratio to 1 process"],
        [
            (2, 1, one[0] / mib, one[1] / mib, one[2] / mib, 1.0),
            (2, 2, two[0] / mib, two[1] / mib, two[2] / mib, two[0] / one[0]),
            (3, 1, one_after[0] / mib, one_after[1] / mib, one_after[2] / mib, 1.0),
            (
                3,
                2,
                two_after[0] / mib,
                two_after[1] / mib,
                two_after[2] / mib,
                two_after[0] / one_after[0],
            ),
        ],
    )


if __name__ == "__main__":
    main()
