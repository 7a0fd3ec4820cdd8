"""Adaptive micro-batching: concurrent predictions for the same endpoint and selection
go to the workers as one ``mlq.predict_many`` message.

The per-message cost (broker round trips, the worker's task overhead, one INSERT)
caps how many single records a queue serves per second; a group pays it once. The
policy is adaptive, like Triton's dynamic batcher and BentoML's adaptive batching:

- fewer than ``max_in_flight`` groups of this lane in flight: send at once, so a lone
  request is never held;
- otherwise collect, and send when a group in flight returns, or as soon as
  ``max_size`` requests wait.

So a request is held no longer than the workers take to answer a group, and groups
grow with the load: under light load each goes alone, under heavy load they fill up.
(A fixed timer instead, "send every few ms", floods slow workers with small groups:
measured here, 4 records a group and 1.2 s p50 at 64 clients.) ``max_in_flight`` is
best near the number of worker processes serving the queue.

Each record keeps its own request id, row and result; a bad record fails alone (the
worker scores a group record by record where it must). A group of one goes as a plain
``mlq.predict`` keyed by its request id; either way each result is stored, and awaited,
under its request id.

Usage::

    item = dispatcher.submit(Lane("income_classifier", None, None), payload)
    await item.sent                      # on the broker: the request is accepted
    result = await item.result           # the worker's PredictResult (or None: unknown)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from celery import Celery

from producer.api import issued
from producer.api.metrics import GROUP_SIZE, QUEUE_WAIT
from producer.api.results import TaskResults, result_of
from producer.sending import send_task
from shared.contracts import QUEUE_PREDICT, TASK_PREDICT, TASK_PREDICT_MANY
from shared.db.engine import autocommit_connection
from shared.db.ledger import ledger_on, record_accepted
from shared.queues import queue_for

log = logging.getLogger(__name__)

# A group still unanswered after this long no longer holds back the next one: a missing
# worker must not hold requests in the API (they wait in the broker instead).
IN_FLIGHT_LIMIT_S = 1.0


class Lane(NamedTuple):
    """Requests that can travel in one message: same endpoint, same selection."""

    endpoint: str
    status: str | None
    version: str | None


@dataclass
class Item:
    payload: dict[str, Any]  # {request_id, record, assignment_key?}
    sent: asyncio.Future[None]
    result: asyncio.Future[dict[str, Any] | None]
    arrived: float = field(default_factory=time.monotonic)


@dataclass
class _LaneState:
    pending: list[Item] = field(default_factory=list)
    in_flight: int = 0


class Dispatcher:
    def __init__(
        self,
        app: Celery,
        results: TaskResults,
        *,
        max_size: int,
        max_in_flight: int,
        result_timeout_s: float,
    ) -> None:
        self.app = app
        self.results = results
        self.max_size = max_size
        self.max_in_flight = max_in_flight
        self.result_timeout_s = result_timeout_s
        self._lanes: dict[Lane, _LaneState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # One thread sends: Celery's producer is synchronous, and one thread keeps
        # messages of a lane in order without a lock.
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlq-send")

    def submit(self, lane: Lane, payload: dict[str, Any]) -> Item:
        loop = asyncio.get_running_loop()
        item = Item(payload, loop.create_future(), loop.create_future())
        state = self._lanes.setdefault(lane, _LaneState())
        state.pending.append(item)
        if state.in_flight < self.max_in_flight or len(state.pending) >= self.max_size:
            self._send_pending(lane, state)
        return item

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._sender.shutdown(wait=True)

    def _send_pending(self, lane: Lane, state: _LaneState) -> None:
        while state.pending:
            group, state.pending = state.pending[: self.max_size], state.pending[self.max_size :]
            state.in_flight += 1
            task = asyncio.create_task(self._run(lane, state, group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _group_returned(self, lane: Lane, state: _LaneState) -> None:
        state.in_flight -= 1
        if state.pending:
            self._send_pending(lane, state)

    async def _run(self, lane: Lane, state: _LaneState, group: list[Item]) -> None:
        """Send a group, then hand each record its result as it is stored (a worker stores
        each under its request id, ``workers/item_results.py``)."""
        now = time.monotonic()
        for item in group:
            QUEUE_WAIT.observe(now - item.arrived)
        GROUP_SIZE.observe(len(group))
        ids = [item.payload["request_id"] for item in group]
        counted = True  # in this lane's in-flight count
        try:
            async with self.results.watching(*ids) as answers:
                try:
                    await asyncio.get_running_loop().run_in_executor(
                        self._sender, self._send, lane, [i.payload for i in group]
                    )
                except Exception as error:
                    for item in group:
                        item.sent.set_exception(error)
                        item.result.set_result(None)
                    return
                for item in group:
                    item.sent.set_result(None)
                for item, answer in zip(group, answers, strict=True):
                    answer.add_done_callback(partial(_hand_over, item))
                await self._mark(ids)
                everything = asyncio.gather(*answers)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(everything), IN_FLIGHT_LIMIT_S)
                counted = False
                self._group_returned(lane, state)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(everything, self.result_timeout_s)
        finally:
            if counted:
                self._group_returned(lane, state)
            for item in group:
                if not item.result.done():
                    item.result.set_result(None)  # not known in time

    async def _mark(self, ids: list[str]) -> None:
        try:
            await issued.mark_sent(self.results, ids)
        except Exception as error:
            # Sent: the predictions will be made and their rows written; only telling
            # the ids apart from ones never issued waits for those rows.
            log.warning("group sent, but its ids not marked as issued: %s", error)

    def _send(self, lane: Lane, payloads: list[dict[str, Any]]) -> None:
        queue = queue_for(QUEUE_PREDICT, lane.endpoint)
        selection = {
            key: value
            for key, value in (("status", lane.status), ("version", lane.version))
            if value is not None
        }
        if ledger_on():
            # Durable before it is sent (this runs in a thread, off the event loop).
            with autocommit_connection() as connection:
                record_accepted(
                    connection,
                    producer="api",
                    items=[
                        (
                            p["request_id"],
                            lane.endpoint,
                            {**p, "endpoint": lane.endpoint, **selection},
                        )
                        for p in payloads
                    ],
                )
        if not self.results.pushed:
            issued.mark_before_sending(self.app, [p["request_id"] for p in payloads])
        if len(payloads) == 1:
            kwargs = {**payloads[0], "endpoint": lane.endpoint, **selection}
            task_id = payloads[0]["request_id"]
            name = TASK_PREDICT
        else:
            kwargs = {"items": payloads, "endpoint": lane.endpoint, **selection}
            task_id = str(uuid.uuid4())
            name = TASK_PREDICT_MANY
        send_task(self.app, name, kwargs=kwargs, task_id=task_id, queue=queue)


def _hand_over(item: Item, answer: asyncio.Future[dict[str, Any]]) -> None:
    if not answer.cancelled() and not item.result.done():
        item.result.set_result(result_of(item.payload["request_id"], answer.result()))
