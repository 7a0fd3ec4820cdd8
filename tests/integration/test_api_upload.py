"""A batch upload far larger than the API may hold is streamed: the server's memory
stays flat while every record goes to the broker."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.contracts import EXAMPLE_RECORD
from shared.db.engine import session_scope
from shared.lifecycle import set_isolated

pytestmark = pytest.mark.integration

UPLOAD_BYTES = 80 * 2**20
# What the server may grow by while it reads the upload: a chunk of records and its
# message, far less than the upload.
GROWTH_LIMIT = 40 * 2**20


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def csv_body(size: int) -> Iterator[bytes]:
    columns = list(EXAMPLE_RECORD)
    yield (",".join(columns) + "\n").encode()
    line = (",".join(str(EXAMPLE_RECORD[c]) for c in columns) + "\n").encode()
    block = line * 2000
    for _ in range(size // len(block)):
        yield block


def test_an_upload_larger_than_the_server_may_hold_is_streamed(
    http: httpx.Client, api_server: Any
) -> None:
    # Isolated, the endpoint's chunks wait on a queue no test worker consumes: this
    # measures the API alone, not the scoring.
    with session_scope() as session:
        set_isolated(session, endpoint="income_classifier", isolated=True)
    time.sleep(5.5)  # the API reads which endpoints are isolated every 5 s
    pid = api_server.process.pid
    baseline, peak = rss(pid), [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss(pid))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        answer = http.post(
            "/v1/endpoints/income_classifier/batches",
            content=csv_body(UPLOAD_BYTES),
            headers={"content-type": "text/csv"},
            timeout=600,
        )
    finally:
        done.set()
        watcher.join()
    assert answer.status_code == 202, answer.text
    assert answer.json()["total"] > UPLOAD_BYTES // 200
    assert peak[0] - baseline < GROWTH_LIMIT, f"grew {(peak[0] - baseline) / 2**20:.0f} MiB"
    assert os.path.exists(f"/proc/{pid}")
