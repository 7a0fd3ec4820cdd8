"""Choosing an algorithm: the tutorial's semantics, with distinct errors for none and several."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.errors import AmbiguousSelectionError, NoAlgorithmError
from shared.registry import AlgorithmInfo, choose_algorithm


def algo(id_: int, name: str, version: str, status: str) -> AlgorithmInfo:
    return AlgorithmInfo(
        id_, "income_classifier", name, version, status, "", "tests", None, datetime.now(UTC)
    )


RF = algo(1, "random forest", "0.0.1", "production")
ET = algo(2, "extra trees", "0.0.1", "testing")
ET2 = algo(3, "extra trees", "0.0.2", "testing")


def choose(*candidates: AlgorithmInfo, **kw: str) -> AlgorithmInfo:
    return choose_algorithm(list(candidates), endpoint="income_classifier", **kw)


def test_production_is_the_default() -> None:
    assert choose(RF, ET) == RF


def test_status_narrows_the_choice() -> None:
    assert choose(RF, ET, status="testing") == ET


def test_version_narrows_an_ambiguous_status() -> None:
    assert choose(RF, ET, ET2, status="testing", version="0.0.2") == ET2


def test_no_match_is_a_clear_error_listing_what_exists() -> None:
    with pytest.raises(
        NoAlgorithmError,
        match=r"no algorithm with status 'production' and "
        r"version '9\.9\.9'.*random forest 0\.0\.1 \(production\)",
    ):
        choose(RF, ET, version="9.9.9")


def test_several_matches_ask_for_a_version() -> None:
    with pytest.raises(AmbiguousSelectionError, match=r"2 algorithms .* name a version"):
        choose(RF, ET, ET2, status="testing")


def test_an_endpoint_with_no_algorithms_is_an_error() -> None:
    with pytest.raises(NoAlgorithmError, match="it has: none"):
        choose()
