"""The reconciler (``mlq.reconcile``, run by beat every MLQ_RECONCILE_SECONDS): accepted
work that has no row yet, and that is neither waiting in its queue nor held by a live
worker, is sent again.

It finishes what a broker or a worker lost: a message a worker popped and died with
(kombu's Redis transport pops before it records the message as unacknowledged), one
acknowledged at a hard time limit, and queues a Redis without persistence lost. Rows are
keyed by request id (a chunk skips positions with rows), so sending again never writes
twice; the checks below keep it from scoring twice what is only slow:

- too young: accepted (or last sent again) less than MLQ_RECONCILE_AFTER ago;
- queued: its queue holds messages sent no later than it (a queue is first in, first
  out, so work sent after the oldest message still there may be waiting behind it);
- held: a live worker renewed its lease (``worker_lease``) lately, or the message still
  sits in Redis' ``unacked`` hash, from where kombu puts it back by itself;
- confirmed: it must be found overdue twice, at least 1.5 lease periods apart, so that a
  message a live worker took just now has had time to show in its leases.

After MLQ_MAX_DELIVERIES resends the work is given up: its records get error rows and a
dead letter keeps it for ``mlq dead-letters replay``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import redis
from celery import Celery

from shared.contracts import (
    QUEUE_BATCH,
    QUEUE_PREDICT,
    SENT_AT_HEADER,
    TASK_PREDICT,
    TASK_PREDICT_BATCH,
    chunk_task_id,
)
from shared.db.engine import session_scope
from shared.db.ledger import (
    forget_finished,
    forget_leases,
    held_task_ids,
    lease_tags,
    mark_resent,
    unfinished_chunks,
    unfinished_requests,
    unpack,
)
from shared.db.models import AcceptedRequest, BatchChunk, utcnow
from shared.errors import MlqError
from shared.queues import queue_for
from shared.settings import get_settings

log = logging.getLogger(__name__)

# Entries looked at per run (the oldest first); the rest wait for the next run.
BATCH_LIMIT = 500


class UnfinishedError(MlqError):
    """The work was sent again MLQ_MAX_DELIVERIES times and never finished."""

    code = "not_finished"


@dataclass
class QueueProbe:
    """Whether a queue may still hold work sent at a given time (one look per queue)."""

    app: Celery
    oldest: dict[str, float | None] = field(default_factory=dict)

    def may_hold(self, queue: str, sent_at: datetime) -> bool:
        if queue not in self.oldest:
            self.oldest[queue] = self._oldest_sent(queue)
        oldest = self.oldest[queue]
        return oldest is not None and oldest <= sent_at.timestamp()

    def _oldest_sent(self, queue: str) -> float | None:
        """When the oldest message in the queue was sent; None when it is empty;
        +inf-safe: a message without the header counts as infinitely old."""
        url = str(self.app.conf.broker_url)
        if url.startswith("redis"):
            client = _broker_redis(url)
            raw = client.lindex(queue, -1)  # LPUSH in, BRPOP out: the right end is oldest
            if raw is None:
                return None
            try:
                headers = orjson.loads(raw).get("headers") or {}
                return float(headers[SENT_AT_HEADER])
            except (ValueError, KeyError, TypeError):
                return 0.0
        with self.app.connection_for_read() as connection:
            declared = connection.default_channel.queue_declare(queue=queue, passive=True)
            return 0.0 if declared.message_count else None


_REDIS: dict[str, redis.Redis] = {}


def _broker_redis(url: str) -> redis.Redis:
    if url not in _REDIS:
        _REDIS[url] = redis.Redis.from_url(url, socket_timeout=10)
    return _REDIS[url]


def _unacked(app: Celery, tags: dict[str, str]) -> set[str]:
    """The task ids (of ``tags``: task id to delivery tag) still in Redis' unacked hash."""
    url = str(app.conf.broker_url)
    if not tags or not url.startswith("redis"):
        return set()
    options = app.conf.broker_transport_options or {}
    key = str(options.get("unacked_key", "unacked"))
    ids = list(tags)
    found = _broker_redis(url).hmget(key, [tags[i] for i in ids])
    return {task_id for task_id, value in zip(ids, found, strict=True) if value is not None}


def reconcile(app: Celery, *, now: datetime | None = None) -> dict[str, int]:
    """One pass; returns counts of what it did."""
    settings = get_settings()
    now = now or utcnow()
    lease = timedelta(seconds=settings.lease_s)
    with session_scope() as session:
        forgotten = forget_finished(session)
        forget_leases(
            session, before=now - lease * 10 - timedelta(seconds=settings.visibility_timeout_s)
        )
    counts = {"finished": sum(forgotten), "waiting": 0, "overdue": 0, "resent": 0, "given_up": 0}
    cutoff = now - timedelta(seconds=settings.reconcile_after_s)
    probe = QueueProbe(app)
    with session_scope() as session:
        entries: list[AcceptedRequest | BatchChunk] = [
            *unfinished_requests(session, cutoff=cutoff, limit=BATCH_LIMIT),
            *unfinished_chunks(session, cutoff=cutoff, limit=BATCH_LIMIT),
        ]
        task_ids = {_task_id(entry): entry for entry in entries}
        held = held_task_ids(session, task_ids=list(task_ids), since=now - lease * 2.5)
        held |= _unacked(app, lease_tags(session, task_ids=[t for t in task_ids if t not in held]))
        for task_id, entry in task_ids.items():
            name, kwargs = _message(entry)
            sent_at = entry.resent_at or _first_sent(entry)
            queue = queue_for(
                QUEUE_BATCH if name == TASK_PREDICT_BATCH else QUEUE_PREDICT,
                str(kwargs.get("endpoint", "")),
            )
            if task_id in held or probe.may_hold(queue, sent_at):
                entry.overdue_at = None
                counts["waiting"] += 1
                continue
            if entry.overdue_at is None or entry.overdue_at > now - lease * 1.5:
                entry.overdue_at = entry.overdue_at or now
                counts["overdue"] += 1
                continue
            if entry.resends >= settings.max_deliveries:
                _give_up(name, task_id, kwargs, entry)
                counts["given_up"] += 1
                continue
            log.warning(
                "%s %s: accepted %s, no row, not queued, not held by a live worker: "
                "sending it again (resend %d)",
                name,
                task_id,
                sent_at.isoformat(),
                entry.resends + 1,
            )
            app.send_task(
                name,
                kwargs=kwargs,
                task_id=task_id,
                queue=queue,
                headers={SENT_AT_HEADER: time.time()},
            )
            mark_resent(entry, now)
            counts["resent"] += 1
    if counts["resent"] or counts["given_up"]:
        log.warning("reconcile: %s", counts)
    return counts


def _task_id(entry: AcceptedRequest | BatchChunk) -> str:
    if isinstance(entry, AcceptedRequest):
        return entry.id
    return chunk_task_id(entry.batch_id, entry.start)


def _first_sent(entry: AcceptedRequest | BatchChunk) -> datetime:
    return entry.accepted_at if isinstance(entry, AcceptedRequest) else entry.sent_at


def _message(entry: AcceptedRequest | BatchChunk) -> tuple[str, dict[str, Any]]:
    if isinstance(entry, AcceptedRequest):
        return TASK_PREDICT, {**unpack(entry.payload), "request_id": entry.id}
    return TASK_PREDICT_BATCH, unpack(entry.payload)


def _give_up(
    name: str, task_id: str, kwargs: dict[str, Any], entry: AcceptedRequest | BatchChunk
) -> None:
    from workers.deliveries import give_up

    error = UnfinishedError(
        f"sent {entry.resends + 1} times (MLQ_MAX_DELIVERIES={get_settings().max_deliveries} "
        "resends) and never finished: each time a worker died with it, or it passed its "
        "hard time limit; it was not scored"
    )
    log.error("%s %s: given up: %s", name, task_id, error.message)
    give_up(name, task_id, error, kwargs)
