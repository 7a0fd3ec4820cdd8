from __future__ import annotations

import math

from shared.json_safe import MAX_DEPTH, json_safe


def test_non_finite_numbers_become_strings_anywhere() -> None:
    value = {"a": math.nan, "b": [math.inf, {"c": -math.inf}], "d": 1.5, "e": None}
    assert json_safe(value) == {
        "a": "NaN",
        "b": ["Infinity", {"c": "-Infinity"}],
        "d": 1.5,
        "e": None,
    }


def test_deep_nesting_is_cut_not_walked() -> None:
    deep: list[object] = []
    for _ in range(10_000):
        deep = [deep]
    cut = json_safe(deep)
    for _ in range(MAX_DEPTH):
        cut = cut[0]
    assert isinstance(cut, str) and "nested deeper" in cut


def test_what_the_database_or_orjson_refuse_becomes_storable() -> None:
    value = {"id\x00": 10**20, "small": -(2**63), "name": "a\x00b", "ok": [True, None, 1.5]}
    assert json_safe(value) == {
        "id\ufffd": "100000000000000000000",
        "small": -(2**63),
        "name": "a\ufffdb",
        "ok": [True, None, 1.5],
    }
