"""A/B tests from the client: start, list, show, stop and replay.

Everything but a replay's scoring reads and writes the database directly: no worker
needs to be running to show or stop a test, and a stop decides exactly as beat does
(shared/ab/evaluation.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from producer.batch_submit import BatchesMixin
from producer.consumers import require_consumer
from shared.ab.evaluation import describe, end_test
from shared.ab.replay import DEFAULT_LIMIT, start_replay
from shared.ab.report import list_tests, report
from shared.ab.start import start_test
from shared.contracts import DEFAULT_ENDPOINT, MODE_SPLIT, QUEUE_BATCH, RULE_SEQUENTIAL
from shared.db.engine import session_scope
from shared.queues import queue_for

# How often a replay looks at its batch's progress.
REPLAY_POLL_S = 0.5


class ABTestsMixin(BatchesMixin):
    """A/B tests; a replay sends its records as a batch."""

    def start_ab_test(
        self,
        *,
        b: str,
        duration: timedelta,
        a: str | None = None,
        endpoint: str = DEFAULT_ENDPOINT,
        mode: str = MODE_SPLIT,
        rule: str = RULE_SEQUENTIAL,
        split: float = 0.5,
        alpha: float = 0.05,
        min_labelled: int = 200,
        min_coverage: float = 0.5,
        label_delay: timedelta = timedelta(0),
        guardrail_alpha: float = 0.05,
        latency_margin: float = 0.2,
        title: str | None = None,
        created_by: str = "mlq",
    ) -> dict[str, Any]:
        """Start a test of challenger ``b`` against the production algorithm (``a``, by
        default the endpoint's production algorithm); each as NAME or NAME@VERSION.

        ``mode`` "split" serves a share ``split`` of the traffic with B; "shadow" serves
        everyone with A and has B score the same records beside it. ``label_delay``:
        how long labels take to come; younger requests are not expected to have one.
        """
        with session_scope() as session:
            test = start_test(
                session,
                endpoint=endpoint,
                a=a,
                b=b,
                duration=duration,
                mode=mode,
                label_delay=label_delay,
                title=title,
                created_by=created_by,
                rule=rule,
                split=split,
                alpha=alpha,
                min_labelled=min_labelled,
                min_coverage=min_coverage,
                guardrail_alpha=guardrail_alpha,
                latency_margin=latency_margin,
            )
            return describe(session, test)

    def ab_tests(self) -> list[dict[str, Any]]:
        """Every test, running and ended, oldest first."""
        return list_tests()

    def ab_report(self, test_id: int) -> dict[str, Any]:
        """A test with its evidence: frozen once ended; while running, what beat would do
        now and what a stop now would decide; and its timeline, for plotting."""
        return report(test_id)

    def stop_ab_test(self, test_id: int, *, ended_by: str = "mlq ab stop") -> dict[str, Any]:
        """Decide and end a test now (B is promoted only if it really won); a test that
        has ended reports how it ended, with ``ended_now`` false."""
        return end_test(test_id, ended_by=ended_by)

    def replay_ab_test(
        self,
        *,
        b: str,
        a: str | None = None,
        endpoint: str = DEFAULT_ENDPOINT,
        since: timedelta = timedelta(days=7),
        limit: int = DEFAULT_LIMIT,
        alpha: float = 0.05,
        min_labelled: int = 200,
        timeout: float = 600,
        created_by: str = "mlq",
        on_progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Re-score the newest ``limit`` inputs A answered within ``since`` with B, through
        the batch path, and compare the answers pair by pair with the feedback already
        given. Returns the replay's report once every record is scored (the replay then
        ends, promoting nothing), or, after ``timeout`` seconds, as far as it got
        (``state`` "running"; `mlq ab show` and `mlq ab stop` finish it later).
        """
        # Say now, before anything is recorded, that no worker would score the replay.
        require_consumer(self.app, queue_for(QUEUE_BATCH, endpoint))
        with session_scope() as session:
            replay = start_replay(
                session,
                endpoint=endpoint,
                a=a,
                b=b,
                since=since,
                limit=limit,
                created_by=created_by,
                alpha=alpha,
                min_labelled=min_labelled,
            )
        self.submit_batch(
            replay.records,
            endpoint=endpoint,
            algorithm_id=replay.algorithm_id,
            batch_id=replay.batch_id,
            source=f"replay of A/B test #{replay.test_id}",
        )
        deadline = time.monotonic() + timeout
        while True:
            progress = self.batch_status(replay.batch_id)
            if on_progress is not None:
                on_progress(progress["done"], len(replay.records))
            if progress["state"] == "done":
                end_test(replay.test_id, ended_by="mlq ab replay")
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(REPLAY_POLL_S)
        return report(replay.test_id)
