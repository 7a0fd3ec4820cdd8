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
