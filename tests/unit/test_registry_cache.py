"""The worker's registry copy: reused within its time to live, read again after it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.errors import UnknownEndpointError
from shared.registry import AlgorithmInfo
from shared.registry_cache import EndpointEntry, RegistryCache


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def algo(name: str, status: str) -> AlgorithmInfo:
    return AlgorithmInfo(1, "e", name, "1", status, "", "", None, datetime.now(UTC))


def test_a_status_change_is_seen_once_the_ttl_has_passed() -> None:
    registry = {"e": [algo("rf", "production")]}
    loads: list[str] = []

    def load(endpoint: str) -> EndpointEntry:
        loads.append(endpoint)
        if endpoint not in registry:
            raise UnknownEndpointError(endpoint)
        return EndpointEntry(list(registry[endpoint]))

    clock = Clock()
    cache = RegistryCache(2.0, load=load, clock=clock)
    assert cache.select(endpoint="e").name == "rf"
    registry["e"] = [algo("rf", "testing"), algo("et", "production")]
    clock.now = 1.9
    assert cache.select(endpoint="e").name == "rf"
    assert loads == ["e"]
    clock.now = 2.0
    assert cache.select(endpoint="e").name == "et"
    assert loads == ["e", "e"]


def test_an_unknown_endpoint_is_not_cached() -> None:
    calls = []

    def load(endpoint: str) -> EndpointEntry:
        calls.append(endpoint)
        raise UnknownEndpointError(endpoint)

    cache = RegistryCache(60, load=load, clock=Clock())
    for _ in range(2):
        with pytest.raises(UnknownEndpointError):
            cache.select(endpoint="nope")
    assert calls == ["nope", "nope"]


def test_zero_reads_every_time() -> None:
    calls = []

    def load(endpoint: str) -> EndpointEntry:
        calls.append(endpoint)
        return EndpointEntry([algo("rf", "production")])

    cache = RegistryCache(0, load=load, clock=Clock())
    cache.select(endpoint="e")
    cache.select(endpoint="e")
    assert len(calls) == 2
