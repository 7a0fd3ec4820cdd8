"""Validating a chunk at once must agree with validating its records one by one."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.contracts import EXAMPLE_RECORD
from shared.errors import InvalidRecordError
from tests.adult_schema import adult_schema
from workers.training import ADULT_DATA, read_adult

SCHEMA = adult_schema()

odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["Private", " Male ", "?", "Husband", "United-States", "abc"]),
    st.lists(st.integers(), max_size=2),
)


@st.composite
def records(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["good", "changed", "dropped", "extra", "not a dict"]))
    record: dict[str, Any] = dict(EXAMPLE_RECORD)
    if kind == "changed":
        for key in draw(st.lists(st.sampled_from(sorted(record)), min_size=1, max_size=3)):
            record[key] = draw(odd_values)
    elif kind == "dropped":
        del record[draw(st.sampled_from(sorted(record)))]
    elif kind == "extra":
        record[draw(st.text(min_size=1, max_size=8))] = 1
    elif kind == "not a dict":
        return draw(odd_values)
    return record


def one_by_one(batch: list[Any]) -> tuple[list[int], dict[int, str]]:
    valid, errors = [], {}
    for position, record in enumerate(batch):
        try:
            SCHEMA.validate(record)
            valid.append(position)
        except InvalidRecordError as error:
            errors[position] = str(error)
    return valid, errors


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(records(), max_size=30))
def test_the_chunk_path_agrees_with_the_record_path(batch: list[Any]) -> None:
    chunk = SCHEMA.validate_many(batch)
    valid, errors = one_by_one(batch)
    assert chunk.positions == valid
    assert {p: str(e) for p, e in chunk.errors.items()} == errors
    expected = SCHEMA.columns_of([SCHEMA.validate(batch[p]) for p in valid])
    for name in SCHEMA.names:
        assert list(chunk.columns[name]) == list(expected[name])


def test_held_out_records_validate_in_one_pass() -> None:
    everything = read_adult(ADULT_DATA)
    held_out = everything.drop(columns=["income"]).tail(3000).to_dict("records")
    chunk = SCHEMA.validate_many(held_out)
    assert chunk.positions == list(range(3000))
    assert not chunk.errors


@pytest.mark.parametrize("value", [10**400, math.inf, -0.5])
def test_extreme_numbers_are_errors_not_crashes(value: object) -> None:
    chunk = SCHEMA.validate_many([EXAMPLE_RECORD, {**EXAMPLE_RECORD, "fnlwgt": value}])
    assert chunk.positions == [0]
    assert chunk.errors[1].field == "fnlwgt"
