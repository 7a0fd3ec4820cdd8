"""The JSON decoder workers use refuses bodies nested deeper than any valid message."""

from __future__ import annotations

import json

import pytest
from kombu.exceptions import DecodeError
from kombu.serialization import loads

from shared.celery_app import app  # noqa: F401  (registers the bounded decoder)
from shared.contracts import EXAMPLE_RECORD, nested_deeper_than
from shared.wire import MAX_MESSAGE_DEPTH, bounded_loads


def test_depth_is_counted_without_recursion() -> None:
    assert not nested_deeper_than({"a": [1, {"b": []}]}, 4)
    assert nested_deeper_than({"a": [1, {"b": []}]}, 3)
    assert nested_deeper_than([[]] * 3, 1)
    assert not nested_deeper_than("text", 1)
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    assert nested_deeper_than(deep, MAX_MESSAGE_DEPTH)


def test_a_chunk_of_records_decodes_as_before() -> None:
    body = json.dumps([[], {"records": [EXAMPLE_RECORD] * 1000, "endpoint": "e"}, {}])
    assert bounded_loads(body) == json.loads(body)
    assert bounded_loads(body.encode()) == json.loads(body)


@pytest.mark.parametrize("depth", [MAX_MESSAGE_DEPTH + 1, 900])
def test_a_body_nested_too_deep_is_refused_as_undecodable(depth: int) -> None:
    body = "[" * depth + "]" * depth
    with pytest.raises(DecodeError, match="nested more than"):
        loads(body.encode(), "application/json", "utf-8", accept={"application/json"})


def test_the_deepest_allowed_body_decodes() -> None:
    body = "[" * MAX_MESSAGE_DEPTH + "]" * MAX_MESSAGE_DEPTH
    assert loads(body.encode(), "application/json", "utf-8") is not None
