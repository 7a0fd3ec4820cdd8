"""The result of each record of a ``mlq.predict_many`` group, stored under its own request
id in the result backend as if it had been sent alone: ``mlq result ID``,
``Client.result`` and ``GET /v1/predictions/{id}`` read it (and wait for it) by that id.

With Redis: one pipeline for the group (SET with the backend's expiry, and PUBLISH on the
key's channel, as Celery's Redis backend stores a result). Elsewhere: one write each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import states
from celery.backends.base import Backend
from celery.backends.redis import RedisBackend

from shared.contracts import PredictResult


def store_item_results(
    backend: Backend, items: Sequence[Any], results: Sequence[PredictResult]
) -> None:
    """Store each result whose request id is the one its item was sent with (an id that
    could key no row is answered in the group's result only)."""
    keyed = [
        result
        for item, result in zip(items, results, strict=True)
        if isinstance(item, dict) and item.get("request_id") == result["request_id"]
    ]
    if not isinstance(backend, RedisBackend):
        for result in keyed:
            backend.store_result(result["request_id"], result, states.SUCCESS)
        return
    with backend.client.pipeline(transaction=False) as pipe:
        for result in keyed:
            meta = backend._get_result_meta(
                result=result, state=states.SUCCESS, traceback=None, request=None
            )
            meta["task_id"] = result["request_id"]
            value = backend.encode(meta)
            key = backend.get_key_for_task(result["request_id"])
            pipe.set(key, value, ex=backend.expires)
            pipe.publish(key, value)
        pipe.execute()
