"""Property-based fuzzing of the record validator with arbitrary JSON-like values.

Whatever a producer sends, ``validate`` returns a clean record or raises
InvalidRecordError naming the field, never anything else (which would be an `internal`
error for one record, or a lost chunk of a batch); its error is storable as an error
row; and ``validate_many`` agrees with it record by record. tests/unit/test_features.py
and tests/unit/test_validate_many.py hold the hand-picked cases and the chunk path's
agreement on flat values; here the values are nested, huge and non-finite.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shared.contracts import EXAMPLE_RECORD, record_limit_error
from shared.errors import InvalidRecordError
from shared.json_safe import json_safe
from tests.adult_schema import adult_schema

SCHEMA = adult_schema()
FIELDS = sorted(EXAMPLE_RECORD)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def nested(depth: int) -> list[Any]:
    """A list nested ``depth`` deep: JSON allows it, Python's repr and json recurse on it."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


DEEP = nested(990)  # decodable by json.loads in a shallow frame, not repr()-able in a deep one

texts = st.one_of(
    st.text(max_size=20),  # any code point but surrogates, NUL included
    st.sampled_from(["", "\x00", " ? ", "Private", " Male ", "Husband", "White\x00", "ｱ"]),
    st.builds(str.__mul__, st.sampled_from(["a", "\x00", "é ", "Private"]), st.integers(1, 10**5)),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded: far beyond 64 bits too
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), texts), children, max_size=4),
    ),
    max_leaves=12,
)


def check_outcome(record: object) -> dict[str, Any] | InvalidRecordError:
    """Validate; fail the test on anything but a clean record or a storable, clear error."""
    try:
        clean = SCHEMA.validate(record)
    except InvalidRecordError as error:
        assert error.message, "an error must say something"
        if error.field is not None:
            assert isinstance(error.field, str)
            assert repr(error.field)[:50] in error.message  # named, as repr shows it
        # Its error row must be writable: what the bulk writer encodes, after json_safe.
        orjson.dumps(json_safe(error.as_dict()))
        assert len(error.message) < 2000, "a message stays readable whatever the record"
        return error
    assert list(clean) == list(SCHEMA.names)
    for column in SCHEMA.columns:
        if column.type == "string":
            assert clean[column.name] in column.accepted
        else:
            value = clean[column.name]
            assert type(value) is float and math.isfinite(value)
            assert column.minimum is not None and column.maximum is not None
            assert column.minimum <= value <= column.maximum
    return clean


@FUZZ
@given(json_values)
@example({**EXAMPLE_RECORD, "age": 10**400})
def test_any_json_value_is_a_clean_record_or_a_clear_error(value: Any) -> None:
    outcome = check_outcome(value)
    if not isinstance(value, dict):
        assert isinstance(outcome, InvalidRecordError) and outcome.field is None
        assert "must be a JSON object" in outcome.message


@FUZZ
@given(st.sampled_from(FIELDS), json_values)
@example("fnlwgt", math.nan)
@example("capital-gain", -math.inf)
@example("native-country", "United-States\x00")
def test_one_field_changed_is_accepted_or_named(field: str, value: Any) -> None:
    outcome = check_outcome({**EXAMPLE_RECORD, field: value})
    if isinstance(outcome, InvalidRecordError):
        assert outcome.field == field


# Too deep for hypothesis to print as an example, so checked on their own.
@pytest.mark.parametrize(
    ("record", "field"),
    [
        (DEEP, None),
        ({**EXAMPLE_RECORD, "age": DEEP}, "age"),
        ({**EXAMPLE_RECORD, "race": DEEP}, "race"),
    ],
    ids=["a deep record", "a deep number", "a deep category"],
)
def test_values_nested_a_thousand_deep_are_named_not_crashes(
    record: object, field: str | None
) -> None:
    outcome = check_outcome(record)
    assert isinstance(outcome, InvalidRecordError) and outcome.field == field
    assert SCHEMA.validate_many([record, EXAMPLE_RECORD]).errors[0].as_dict() == outcome.as_dict()


@FUZZ
@given(st.sampled_from(FIELDS), st.one_of(st.none(), texts), json_values)
def test_a_field_dropped_or_an_unknown_one_added_is_named(
    field: str, extra: str | None, value: Any
) -> None:
    record: dict[str, Any] = dict(EXAMPLE_RECORD)
    if extra is None or extra in record:
        del record[field]
        expected = field
    else:
        record[extra] = value
        expected = extra
    outcome = check_outcome(record)
    assert isinstance(outcome, InvalidRecordError)
    assert outcome.field == expected


mutated_records = st.one_of(
    st.just(EXAMPLE_RECORD),
    st.builds(
        lambda field, value: {**EXAMPLE_RECORD, field: value}, st.sampled_from(FIELDS), json_values
    ),
    json_values,
)


@FUZZ
@given(st.lists(mutated_records, max_size=12))
def test_the_chunk_path_agrees_record_by_record(records: list[Any]) -> None:
    chunk = SCHEMA.validate_many(records)
    outcomes = [check_outcome(record) for record in records]
    assert chunk.positions == [i for i, o in enumerate(outcomes) if isinstance(o, dict)]
    assert {p: e.as_dict() for p, e in chunk.errors.items()} == {
        i: o.as_dict() for i, o in enumerate(outcomes) if isinstance(o, InvalidRecordError)
    }
    assert all(len(values) == len(chunk.positions) for values in chunk.columns.values())


@FUZZ
@given(json_values, st.integers(min_value=1, max_value=10_000))
def test_the_size_check_before_validation_measures_anything_without_raising(
    value: Any, limit: int
) -> None:
    """Workers measure every record before validating it (MLQ_MAX_RECORD_BYTES)."""
    error = record_limit_error(value, limit)
    try:
        size: int | None = len(orjson.dumps(value))
    except TypeError:  # a number beyond 64 bits: measured as stored, as digits
        size = None
    if size is not None:
        assert (error is None) == (size <= limit)
    if error is not None:  # too large (this strategy nests too little to be too deep)
        assert error.message.endswith(f"more than MLQ_MAX_RECORD_BYTES={limit} allows")
        assert error.field is None


@pytest.mark.parametrize(("depth", "refused"), [(253, False), (254, True), (900, True)])
def test_records_nested_past_the_limit_are_refused_by_the_size_check(
    depth: int, refused: bool
) -> None:
    error = record_limit_error(nested(depth), 10**6)
    assert (error is not None) == refused
    if error is not None:
        assert "nested more than 254 levels deep" in error.message
