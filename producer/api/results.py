"""Waiting for task results in the event loop, without a thread per waiting request.

With Celery's Redis result backend, a worker stores a result under the key
``celery-task-meta-<task id>`` and publishes it on the channel of the same name. One
pub/sub connection per server process subscribes to the channel of each awaited task
(before the task is sent), so an answer reaches its waiter the moment it is stored.
A sweep reads the keys of tasks awaited for a while (MGET), so that a result stored
before its subscription took effect is not missed. With any other backend the sweep
alone does the work, reading the backend every ``POLL_S``.

Usage::

    async with results.watching(task_id) as [answer]:    # subscribed from here on
        send the task
        meta = await asyncio.wait_for(asyncio.shield(answer), timeout)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio
from celery import Celery, states
from celery.backends.redis import RedisBackend

from shared.contracts import STATUS_ERROR, STATUS_QUEUED, STATUS_RUNNING

log = logging.getLogger(__name__)

# A result not pushed within this long is read from the backend instead.
SWEEP_AFTER_S = 0.5
# How often the sweep runs (Redis), and how often other backends are read.
SWEEP_S = 0.25
POLL_S = 0.05
# Keeps the pub/sub connection subscribed (and so readable) while nothing is awaited.
IDLE_CHANNEL = "mlq-api-results-idle"


@dataclass
class _Watch:
    future: asyncio.Future[dict[str, Any]]
    since: float = field(default_factory=time.monotonic)
    users: int = 1


class TaskResults:
    def __init__(self, app: Celery) -> None:
        self.app = app
        self.backend = app.backend
        self.pushed = isinstance(self.backend, RedisBackend)
        self._watches: dict[str, _Watch] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._redis: redis.asyncio.Redis | None = None
        self._pubsub: Any = None

    @property
    def redis(self) -> redis.asyncio.Redis:
        """The result backend's Redis, for commands of the event loop (the marks)."""
        assert self._redis is not None, "start() first"
        return self._redis

    async def start(self) -> None:
        if self.pushed:
            self._redis = redis.asyncio.Redis.from_url(str(self.app.conf.result_backend))
            self._pubsub = self._redis.pubsub()
            await self._pubsub.subscribe(IDLE_CHANNEL)
            self._tasks.append(asyncio.create_task(self._listen()))
        self._tasks.append(asyncio.create_task(self._sweep()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._pubsub is not None:
            await self._pubsub.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    def key(self, task_id: str) -> bytes:
        return bytes(self.backend.get_key_for_task(task_id))

    @contextlib.asynccontextmanager
    async def watching(self, *task_ids: str) -> AsyncIterator[list[asyncio.Future[dict[str, Any]]]]:
        """A future of each task's final meta ({status, result, ...}), subscribed on entry
        (one SUBSCRIBE for them all)."""
        loop = asyncio.get_running_loop()
        fresh = []
        for task_id in task_ids:
            watch = self._watches.get(task_id)
            if watch is not None:
                watch.users += 1
            else:
                self._watches[task_id] = _Watch(loop.create_future())
                fresh.append(task_id)
        if fresh and self._pubsub is not None:
            await self._pubsub.subscribe(*(self.key(task_id) for task_id in fresh))
        try:
            yield [self._watches[task_id].future for task_id in task_ids]
        finally:
            done = []
            for task_id in task_ids:
                watch = self._watches[task_id]
                watch.users -= 1
                if watch.users == 0:
                    del self._watches[task_id]
                    done.append(task_id)
            if done and self._pubsub is not None:
                with contextlib.suppress(Exception):  # the connection may be gone at shutdown
                    await self._pubsub.unsubscribe(*(self.key(task_id) for task_id in done))

    def _deliver(self, task_id: str, raw: bytes | str | None) -> None:
        watch = self._watches.get(task_id)
        if watch is None or watch.future.done() or raw is None:
            return
        meta = orjson.loads(raw)
        if meta.get("status") in states.READY_STATES:
            watch.future.set_result(meta)

    async def _listen(self) -> None:
        prefix = len(self.key("-")) - 1
        while True:
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=1.0
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                # Redis restarted or the connection dropped: redis-py reconnects and
                # re-subscribes on the next read; the sweep covers the gap.
                log.warning("result subscription interrupted; reconnecting", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if message and message.get("type") == "message":
                channel = message["channel"]
                self._deliver(channel[prefix:].decode(), message["data"])

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S if self.pushed else POLL_S)
            now = time.monotonic()
            due = [
                task_id
                for task_id, watch in self._watches.items()
                if not watch.future.done()
                and (not self.pushed or now - watch.since > SWEEP_AFTER_S)
            ]
            if not due:
                continue
            try:
                if self._redis is not None:
                    values = await self._redis.mget([self.key(t) for t in due])
                else:
                    values = await asyncio.to_thread(self._read_metas, due)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("reading results failed; trying again", exc_info=True)
                continue
            for task_id, raw in zip(due, values, strict=True):
                self._deliver(task_id, raw)

    def _read_metas(self, task_ids: list[str]) -> list[bytes | str | None]:
        """Any backend: each task's meta, as the JSON the Redis path reads."""
        metas: list[bytes | str | None] = []
        for task_id in task_ids:
            meta = self.backend.get_task_meta(task_id)
            ready = meta.get("status") in states.READY_STATES
            metas.append(orjson.dumps(meta, default=str) if ready else None)
        return metas


def result_of(request_id: str, meta: dict[str, Any]) -> dict[str, Any]:
    """A result from Celery's task meta."""
    state = meta.get("status")
    if state == states.SUCCESS and isinstance(meta.get("result"), dict):
        return dict(meta["result"])
    if state in states.READY_STATES:
        return {
            "request_id": request_id,
            "status": STATUS_ERROR,
            "error": {"code": "task_failed", "message": f"{meta.get('result')!r:.300}"},
        }
    running = state in (states.STARTED, states.RETRY)
    return {"request_id": request_id, "status": STATUS_RUNNING if running else STATUS_QUEUED}
