"""The HTTP API under load: predictions with ?wait through `mlq serve`, driven by wrk,
against the Python `Client` round trip and a trivial echo task, in the same run.

Usage::

    .venv/bin/python -m benchmarks.api_load                     # 3 runs of 15 s per load
    .venv/bin/python -m benchmarks.api_load --runs 1 --seconds 5 --api-workers 2

Per run, in this order, against one worker with 2 pool processes on every queue:

- Python Client: `Client.predict` then `Client.result(id, timeout=10)`, sequentially
  (`--client-requests` of them): p50.
- echo x8: 8 Python threads each send `mlq.echo` and wait for its result (Celery's
  `get`), for `--seconds`: requests/s (Celery's own per-message cost).
- wrk, 1, 8 and 64 connections (`benchmarks/wrk/predict.lua`), each for `--seconds`,
  `POST /v1/endpoints/income_classifier/predictions?wait=5` with an API key: requests/s,
  p50, p99, and how many answers were not 200 (a 202 is a result not ready in 5 s).

wrk's own CPU use is printed (from /proc): the load generator must not be the limit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

from benchmarks import harness
from producer.client import Client
from producer.local_processes import LocalApi
from shared.celery_app import app
from shared.contracts import EXAMPLE_RECORD, TASK_ECHO

ROOT = Path(__file__).resolve().parent
PATH = "/v1/endpoints/income_classifier/predictions?wait=5"
PORT = int(os.environ.get("MLQ_BENCH_API_PORT", "8765"))
CONNECTIONS = (1, 8, 64)


def client_ms(client: Client, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        result = client.result(client.predict(EXAMPLE_RECORD), timeout=10)
        times.append((time.perf_counter() - started) * 1000)
        assert result["status"] == "OK", result
    return times


def echo_rate(threads: int, seconds: float) -> float:
    done = [0] * threads
    stop = time.monotonic() + seconds

    def run(slot: int) -> None:
        while time.monotonic() < stop:
            app.send_task(TASK_ECHO, args=[slot]).get(timeout=10)
            done[slot] += 1

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(done) / (time.monotonic() - started)


def wrk(url: str, key: str, connections: int, seconds: float) -> dict[str, float]:
    env = {
        **os.environ,
        "MLQ_WRK_BODY": json.dumps({"record": EXAMPLE_RECORD}),
        "MLQ_WRK_KEY": key,
    }
    command = [
        "wrk",
        f"--threads={min(connections, 2)}",
        f"--connections={connections}",
        f"--duration={seconds:g}s",
        "--timeout=10s",
        f"--script={ROOT / 'wrk' / 'predict.lua'}",
        url + PATH,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    cpu = _cpu_seconds_until_exit(process)
    output = process.stdout.read() if process.stdout else ""
    found = re.search(r"^MLQ (.*)$", output, flags=re.MULTILINE)
    assert process.returncode == 0 and found, output
    figures = {k: float(v) for k, v in (pair.split("=") for pair in found.group(1).split())}
    duration = figures["duration_us"] / 1e6
    return {
        "rate": figures["requests"] / duration,
        "p50": figures["p50_us"] / 1000,
        "p99": figures["p99_us"] / 1000,
        "not_ok": figures["not_ok"] + figures["errors"],
        "wrk_cpu": cpu / duration,
    }


def _cpu_seconds_until_exit(process: subprocess.Popen[str]) -> float:
    """User + system CPU seconds of a child, read from /proc just before it exits."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = 0.0
    while process.poll() is None:
        try:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            used = (int(fields[11]) + int(fields[12])) / ticks
        except (FileNotFoundError, IndexError, ValueError):
            pass
        time.sleep(0.2)
    return used


def api_key() -> str:
    from shared.db.api_keys import create_key
    from shared.db.engine import session_scope

    with session_scope() as session:
        secret, _ = create_key(session, name="benchmark", scopes=["predict"], created_by="bench")
    return secret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--client-requests", type=int, default=500)
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    args = parser.parse_args()

    harness.fresh_database()
    key = api_key()
    client = Client()
    rows: dict[str, list[dict[str, float]]] = {}
    with (
        harness.worker("api-load", concurrency=args.worker_concurrency),
        LocalApi(log_path=harness.HOME / "api.log", port=PORT, workers=args.api_workers) as api,
    ):
        client_ms(client, 20)  # warm up connections
        wrk(api.url, key, 8, 2)
        for run in range(args.runs):
            figures = {"client p50": harness.median(client_ms(client, args.client_requests))}
            figures["echo x8"] = echo_rate(8, args.seconds)
            for connections in CONNECTIONS:
                measured = wrk(api.url, key, connections, args.seconds)
                for name, value in measured.items():
                    figures[f"c{connections} {name}"] = value
            # Ratios within the run: the machine is shared, so only these compare.
            figures["c1 p50 / client p50"] = figures["c1 p50"] / figures["client p50"]
            figures["c8 rate / echo x8"] = figures["c8 rate"] / figures["echo x8"]
            print(f"run {run + 1}: {json.dumps({k: round(v, 2) for k, v in figures.items()})}")
            for name, value in figures.items():
                rows.setdefault(name, []).append({"value": value})
    medians = {name: harness.median([v["value"] for v in values]) for name, values in rows.items()}
    harness.print_table(
        f"HTTP API, median of {args.runs} runs of {args.seconds:g} s "
        f"(worker x{args.worker_concurrency}, mlq serve --workers {args.api_workers})",
        ["measure", "value"],
        sorted(medians.items()),
    )
    harness.print_table(
        "Against the issue's targets",
        ["target", "measured", "goal"],
        [
            ("64 clients: predictions/s", medians["c64 rate"], ">= 1,000 (3,000)"),
            ("64 clients: p99 ms", medians["c64 p99"], "<= 100"),
            ("1 client: p50 / Client p50", medians["c1 p50 / client p50"], "<= 1.3"),
            ("8 clients: rate / echo x8 rate", medians["c8 rate / echo x8"], ">= 5"),
        ],
    )
    harness.drop_database()


if __name__ == "__main__":
    main()
