"""Predictions over HTTP: checks at the door, sending through the dispatcher, and results
by request id, awaited in the event loop. The v1 routes and the tutorial's routes both
call this.

What the API checks itself is the envelope: the endpoint exists, the request id can key
a row, the record is an object within MLQ_MAX_RECORD_BYTES and not nested too deep. The
record's fields are validated by the worker against the model's schema (one place, the
same for every producer); a waiting client gets that error as a 422.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from cachetools import TTLCache
from celery import states

from producer.api import issued
from producer.api.dispatcher import Dispatcher, Lane
from producer.api.metrics import PREDICTION_WAIT
from producer.api.problems import Problem, from_error_info
from producer.api.results import TaskResults, result_of
from producer.sending import BrokerUnavailableError
from shared.contracts import (
    BATCH_SHAPED_ID,
    MAX_ENDPOINT_LENGTH,
    MAX_REQUEST_ID_LENGTH,
    STATUS_ERROR,
    STATUS_OK,
    STATUS_QUEUED,
    accepted_now,
    key_problem,
    parse_batch_request_id,
    record_limit_error,
    unknown_to_mlq,
)
from shared.db.batches import holds_position
from shared.db.engine import session_scope
from shared.db.ledger import accepted_state
from shared.db.requests import get_response
from shared.errors import InvalidRecordError, MlqError, UnknownEndpointError
from shared.registry import list_endpoints
from shared.settings import get_settings

# How long the API trusts its list of endpoints; an endpoint it does not know is read
# again at once, so a new one is served without waiting.
ENDPOINTS_CACHE_S = 5.0
# How often a wait for a batch record (whose result is not pushed) reads its row.
ROW_POLL_S = 0.25
FINAL = (STATUS_OK, STATUS_ERROR)


@dataclass(frozen=True)
class Outcome:
    request_id: str
    result: dict[str, Any] | None  # None: not final within the wait


def link(request_id: str) -> str:
    return f"/v1/predictions/{request_id}"


class Predictions:
    def __init__(self, results: TaskResults, dispatcher: Dispatcher) -> None:
        self.results = results
        self.dispatcher = dispatcher
        self._endpoints: TTLCache[str, frozenset[str]] = TTLCache(maxsize=1, ttl=ENDPOINTS_CACHE_S)

    async def require_endpoint(self, endpoint: str) -> None:
        problem = key_problem(endpoint, MAX_ENDPOINT_LENGTH)
        known = self._endpoints.get("all")
        if problem is None and known is not None and endpoint in known:
            return
        if problem is None:
            known = self._endpoints["all"] = frozenset(await asyncio.to_thread(_read_endpoints))
            if endpoint in known:
                return
        listed = ", ".join(sorted(known or ())) or "none: run `mlq train` or `mlq models add`"
        raise Problem.of(
            UnknownEndpointError(f"unknown endpoint {endpoint[:200]!r}; known endpoints: {listed}"),
            field="endpoint",
        )

    async def predict(
        self,
        *,
        endpoint: str,
        record: Any,
        status: str | None = None,
        version: str | None = None,
        assignment_key: str | None = None,
        request_id: str | None = None,
        wait: float = 0,
    ) -> Outcome:
        """Send one record (unless its client-chosen id was sent before) and wait up to
        ``wait`` seconds for its result."""
        check_envelope(record, request_id, status, version, assignment_key)
        await self.require_endpoint(endpoint)
        if request_id is not None and not await issued.claim(self.results, request_id):
            # Sent before (a retry): answer for that request, never send it twice.
            return Outcome(request_id, await self.result(request_id, wait=wait))
        request_id = request_id or str(uuid.uuid4())
        payload: dict[str, Any] = {
            "request_id": request_id,
            "record": record,
            "accepted_at": accepted_now(),
        }
        if assignment_key is not None:
            payload["assignment_key"] = assignment_key
        item = self.dispatcher.submit(Lane(endpoint, status, version), payload)
        try:
            await item.sent
        except BrokerUnavailableError as error:
            raise Problem.of(error) from None
        if wait <= 0:
            return Outcome(request_id, None)
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(asyncio.shield(item.result), wait)
        except TimeoutError:
            return Outcome(request_id, None)
        if result is not None:
            PREDICTION_WAIT.observe(time.monotonic() - started)
        return Outcome(request_id, result)

    async def result(self, request_id: str, *, wait: float = 0) -> dict[str, Any]:
        """The result of a request: final, or QUEUED/RUNNING (after waiting up to ``wait``
        seconds for it to be final). 404 for an id never issued."""
        deadline = time.monotonic() + wait
        async with self.results.watching(request_id) as [answer]:
            while True:
                current, pushed = await self._current(request_id)
                remaining = deadline - time.monotonic()
                if current["status"] in FINAL or remaining <= 0:
                    return current
                # A single record's result is pushed; a batch record's row is polled.
                pause = remaining if pushed else min(remaining, ROW_POLL_S)
                try:
                    meta = await asyncio.wait_for(asyncio.shield(answer), pause)
                except TimeoutError:
                    continue
                return result_of(request_id, meta)

    async def _current(self, request_id: str) -> tuple[dict[str, Any], bool]:
        """The result as it stands, and whether its final form will be pushed. The row is
        read unless the backend has the final result: it outlives the backend's entry."""
        meta = await self._read_meta(request_id)
        if meta is not None and meta.get("status") in states.READY_STATES:
            return result_of(request_id, meta), True
        stored = await asyncio.to_thread(_stored, request_id)
        if stored is not None:
            return stored, False
        if meta is not None and meta.get("status") != states.PENDING:
            return result_of(request_id, meta), True
        raise Problem(404, "unknown_request", unknown_to_mlq(request_id), field="request_id")

    async def _read_meta(self, request_id: str) -> dict[str, Any] | None:
        if self.results.pushed:
            raw = await self.results.redis.get(self.results.key(request_id))
            return None if raw is None else dict(orjson.loads(raw))
        meta = await asyncio.to_thread(self.results.backend.get_task_meta, request_id)
        return dict(meta)


def _read_endpoints() -> list[str]:
    with session_scope() as session:
        return list_endpoints(session)


def _stored(request_id: str) -> dict[str, Any] | None:
    """The row's result, QUEUED for a batch record not scored yet, None if unknown."""
    with session_scope() as session:
        stored = get_response(session, request_id=request_id)
        if stored is not None:
            return stored
        parsed = parse_batch_request_id(request_id)
        if parsed and holds_position(session, batch_id=parsed[0], position=parsed[1]):
            return {"request_id": request_id, "status": STATUS_QUEUED}
        if accepted_state(session, request_id=request_id) is not None:
            return {"request_id": request_id, "status": STATUS_QUEUED}
    return None


def check_envelope(
    record: Any,
    request_id: str | None,
    status: str | None,
    version: str | None,
    assignment_key: str | None,
) -> None:
    """What the API refuses before sending: 422, or 413 for a record over the size limit."""
    for name, value in (("status", status), ("version", version)):
        if value is not None and (problem := key_problem(value, 128)):
            raise Problem(422, "invalid_request", f"{name} {problem}", field=name)
    if assignment_key is not None and (problem := key_problem(assignment_key, 1024)):
        raise Problem(422, "invalid_request", f"assignment_key {problem}", field="assignment_key")
    if request_id is not None and (problem := key_problem(request_id, MAX_REQUEST_ID_LENGTH)):
        raise Problem(422, "invalid_request", f"request_id {problem}", field="request_id")
    if request_id is not None and parse_batch_request_id(request_id) is not None:
        raise Problem(422, "invalid_request", f"request_id {BATCH_SHAPED_ID}", field="request_id")
    if not isinstance(record, dict):
        raise Problem.of(
            InvalidRecordError(None, "the record must be a JSON object"), field="record"
        )
    refused: MlqError | None = record_limit_error(record, get_settings().max_record_bytes)
    if refused is not None:
        raise Problem.of(refused)


def settle(outcome: Outcome) -> tuple[int, dict[str, Any]]:
    """The status and document of a prediction's answer (a problem raised for an error)."""
    result = outcome.result
    if result is None or result.get("status") not in FINAL:
        return 202, {
            "request_id": outcome.request_id,
            "status": (result or {}).get("status", STATUS_QUEUED),
            "links": {"self": link(outcome.request_id)},
        }
    if result["status"] == STATUS_ERROR:
        raise from_error_info(
            result.get("error") or {}, request_id=outcome.request_id, result=result
        )
    return 200, {**result, "links": {"self": link(outcome.request_id)}}
