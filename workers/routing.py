"""Which algorithm serves a request: the tutorial's selection, or the arm of a running
A/B test for the endpoint's default traffic."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from shared.ab_tests import RunningTest
from shared.contracts import STATUS_AB_TESTING
from shared.registry import AlgorithmInfo, choose_algorithm
from shared.registry_cache import EndpointEntry, RegistryCache


@dataclass(frozen=True)
class Route:
    algorithm: AlgorithmInfo
    ab_test_id: int | None = None
    ab_arm: str | None = None


def assign_arm(test_id: int, key: str, split: float) -> str:
    """ "A" or "B": the same test and key always get the same arm, and a share ``split``
    of keys get "B". The test id is hashed too, so one key is not in the same arm of
    every test."""
    digest = hashlib.blake2b(f"{test_id}:{key}".encode(), digest_size=8).digest()
    return "B" if int.from_bytes(digest, "big") / 2**64 < split else "A"


def route(
    registry: RegistryCache,
    *,
    endpoint: str,
    key: str,
    status: str | None = None,
    version: str | None = None,
) -> Route:
    """While a test runs, default requests (no status, no version) and the tutorial's
    explicit ``status="ab_testing"`` go to the arm ``key`` is assigned to."""
    return _route(
        registry.entry(endpoint), endpoint=endpoint, key=key, status=status, version=version
    )


def _takes_part(test: RunningTest | None, status: str | None, version: str | None) -> bool:
    return test is not None and (
        status == STATUS_AB_TESTING or (status is None and version is None)
    )


def _route(
    entry: EndpointEntry, *, endpoint: str, key: str, status: str | None, version: str | None
) -> Route:
    test = entry.test
    if test is not None and _takes_part(test, status, version):
        arm = assign_arm(test.id, key, test.split)
        wanted = test.algorithm_a_id if arm == "A" else test.algorithm_b_id
        for algorithm in entry.candidates:
            if algorithm.id == wanted:
                return Route(algorithm, test.id, arm)
    return Route(
        choose_algorithm(entry.candidates, endpoint=endpoint, status=status, version=version)
    )


def route_many(
    registry: RegistryCache,
    *,
    endpoint: str,
    keys: list[str],
    status: str | None = None,
    version: str | None = None,
) -> list[Route]:
    """``route`` for many keys against one reading of the registry, selecting once when
    no A/B test applies."""
    entry = registry.entry(endpoint)
    if not _takes_part(entry.test, status, version):
        single = _route(entry, endpoint=endpoint, key="", status=status, version=version)
        return [single] * len(keys)
    return [_route(entry, endpoint=endpoint, key=k, status=status, version=version) for k in keys]
