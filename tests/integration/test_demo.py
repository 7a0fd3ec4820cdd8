"""`mlq demo` on embedded defaults: no server, a fresh home folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_the_demo_runs_on_embedded_defaults(tmp_path: Path, artifacts_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLQ_")}
    env["MLQ_HOME"] = str(tmp_path / "home")
    done = subprocess.run(
        [sys.executable, "-m", "producer.cli", "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    summary = json.loads(done.stdout)
    result = summary["sample"]
    assert result["status"] == "OK" and result["label"] == "<=50K"
    assert summary["decision"].startswith("Model #1 accuracy: ")
    assert "sqlite:///" in done.stderr and "round trip" in done.stderr
    assert (tmp_path / "home" / "mlqueue.sqlite").exists()
    later = subprocess.run(
        [sys.executable, "-m", "producer.cli", "result", result["request_id"], "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert later.returncode == 0, later.stderr
    assert json.loads(later.stdout)["label"] == "<=50K"
    assert "ended by beat: Model #1 accuracy: " in done.stderr

    # mlq stats on SQLite (no percentile function there: computed in Python).
    shown = subprocess.run(
        [sys.executable, "-m", "producer.cli", "stats", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert sum(r["requests"] for r in rows) == 1001  # the sample and the batch
    assert sum(r["labelled"] for r in rows) == 1000
    assert all(0.7 < r["accuracy"] < 0.95 and r["latency_p50_ms"] > 0 for r in rows)

    # The test's evidence and plot on SQLite, with no worker running any more.
    plot = tmp_path / "ab.png"
    show = ["ab", "show", str(summary["ab_test"]), "--json", "--plot", str(plot)]
    ab = subprocess.run(
        [sys.executable, "-m", "producer.cli", *show],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert ab.returncode == 0, ab.stderr
    report = json.loads(ab.stdout)
    assert report["ended_by"] == "beat" and report["summary"]["evidence"]["arms"]
    # The demo's requests: one sample, then a batch whose records all carry the batch's
    # time (its rows' partition key, docs/operations.md#the-request-log): the timeline
    # has a moment for the sample and one for the batch.
    assert len({point["at"] for point in report["timeline"]}) >= 1
    assert report["timeline"][-1]["A"]["requests"] + report["timeline"][-1]["B"]["requests"] > 1
    assert plot.read_bytes()[:4] == b"\x89PNG"
