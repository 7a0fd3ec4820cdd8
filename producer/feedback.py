"""Feedback: the true labels of requests, one or many."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from producer.base import ClientBase
from producer.batch_input import chunked
from producer.sending import send_task
from shared.contracts import FEEDBACK_CHUNK_SIZE, TASK_FEEDBACK, FeedbackResult

log = logging.getLogger(__name__)


class FeedbackMixin(ClientBase):
    def feedback(self, request_id: str, label: str, *, timeout: float = 30) -> FeedbackResult:
        """Give the true label of a request; wait for what became of it.

        The result says whether it was recorded, replaced an earlier label, arrived
        before its prediction (kept and joined later), or names an id never issued.
        """
        return self.feedback_many([(request_id, label)], timeout=timeout)

    def feedback_many(
        self,
        pairs: Iterable[tuple[str, str]],
        *,
        timeout: float = 300,
        chunk_size: int = FEEDBACK_CHUNK_SIZE,
        on_sent: Callable[[int], None] | None = None,
    ) -> FeedbackResult:
        """Give many (request_id, label) pairs, in messages of ``chunk_size``; the outcomes
        of all of them, merged."""
        pending = []
        sent = 0
        for chunk in chunked(pairs, chunk_size):
            items = [{"request_id": str(rid), "label": str(label)} for rid, label in chunk]
            pending.append(send_task(self.app, TASK_FEEDBACK, kwargs={"items": items}))
            log.info("feedback %s: %d labels sent", pending[-1].id, len(items))
            sent += len(items)
            if on_sent:
                on_sent(sent)
        merged: FeedbackResult = {
            "recorded": 0,
            "replaced": [],
            "early": [],
            "unknown": [],
            "invalid": [],
        }
        deadline = time.monotonic() + timeout
        for outcome in pending:
            part = outcome.get(timeout=max(0.1, deadline - time.monotonic()))
            merged["recorded"] += part["recorded"]
            for key in ("replaced", "early", "unknown", "invalid"):
                merged[key].extend(part[key])
        return merged
