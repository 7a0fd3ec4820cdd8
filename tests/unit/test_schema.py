"""Validation of records against a model's input schema: every bad input gets a clear
error naming the field, what was expected and what came."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.contracts import EXAMPLE_RECORD
from shared.errors import InvalidRecordError
from tests.adult_schema import adult_schema
from workers.schema import Column, InputSchema


@pytest.fixture(scope="module")
def schema() -> InputSchema:
    return adult_schema()


def with_(**changes: object) -> dict[str, object]:
    record = dict(EXAMPLE_RECORD)
    for key, value in changes.items():
        record[key.replace("_", "-")] = value
    return record


def test_the_tutorial_record_is_valid(schema: InputSchema) -> None:
    clean = schema.validate(EXAMPLE_RECORD)
    assert clean["age"] == 37.0
    assert clean["workclass"] == "Private"


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        ({k: v for k, v in EXAMPLE_RECORD.items() if k != "age"}, "age", "missing"),
        (with_(age="abc"), "age", "expected a number, got a string 'abc'"),
        (with_(age=None), "age", "is null; a number is required"),
        (with_(workclass=None), "workclass", "is null; a string is required"),
        (with_(workclass="Astronaut"), "workclass", "unknown category 'Astronaut'"),
        ({**EXAMPLE_RECORD, "zodiac": "Leo"}, "zodiac", "unknown field"),
        (with_(age=-1), "age", "-1 is out of range [0, 130]"),
        (with_(age=True), "age", "expected a number, got a boolean"),
        (with_(age=math.nan), "age", "nan is not a finite number"),
        (with_(age=37.5), "age", "expected a whole number, got 37.5"),
        (with_(hours_per_week=169), "hours-per-week", "out of range"),
        (with_(sex=1), "sex", "expected a string, got a number"),
        (with_(race=["White"]), "race", "expected a string, got an array"),
    ],
)
def test_bad_fields_name_the_field_and_the_reason(
    schema: InputSchema, record: object, field: str, reason: str
) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        schema.validate(record)
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert field in str(caught.value)


@pytest.mark.parametrize(
    ("record", "kind"),
    [([EXAMPLE_RECORD], "an array"), (42, "a number"), ("x", "a string"), (None, "null")],
)
def test_a_record_must_be_an_object(schema: InputSchema, record: object, kind: str) -> None:
    with pytest.raises(InvalidRecordError, match=f"must be a JSON object, got {kind}"):
        schema.validate(record)


def test_several_missing_fields_are_all_listed(schema: InputSchema) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        schema.validate({"age": 30})
    assert caught.value.field == "workclass"
    assert "native-country" in caught.value.reason


def test_an_unknown_category_lists_the_expected_ones(schema: InputSchema) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        schema.validate(with_(sex="Other"))
    assert caught.value.reason == "unknown category 'Other'; expected one of Female, Male"


def test_the_data_sets_unknown_marker_is_a_category(schema: InputSchema) -> None:
    assert schema.validate(with_(workclass="?"))["workclass"] == "?"


def test_key_order_does_not_matter(schema: InputSchema) -> None:
    reversed_record = dict(reversed(list(EXAMPLE_RECORD.items())))
    one = schema.columns_of([schema.validate(EXAMPLE_RECORD)])
    other = schema.columns_of([schema.validate(reversed_record)])
    assert list(one) == list(other) == list(schema.names)
    for name in schema.names:
        assert np.array_equal(one[name], other[name])


def test_whitespace_around_categories_is_ignored(schema: InputSchema) -> None:
    assert schema.validate(with_(sex=" Male "))["sex"] == "Male"


def test_schema_round_trips_through_its_manifest_form(schema: InputSchema) -> None:
    assert InputSchema.from_dict(schema.to_dict()) == schema


def test_the_inferred_schema_knows_types_categories_and_ranges(schema: InputSchema) -> None:
    workclass, age = schema.by_name["workclass"], schema.by_name["age"]
    assert (workclass.type, age.type) == ("string", "integer")
    assert "Private" in workclass.categories and workclass.closed
    assert (age.minimum, age.maximum) == (0, 130)
    assert age.observed_min is not None and age.observed_max is not None
    assert age.observed_min >= 17 and age.observed_max <= 90


def test_nulls_are_filled_passed_or_refused_as_the_column_says() -> None:
    schema = InputSchema(
        (
            Column("filled", "number", "fill", fill=2.5),
            Column("passed", "number", "pass"),
            Column("colour", "string", "fill", fill="red", categories=("red", "blue")),
            Column("any", "string", "pass", categories=("a",), closed=False),
        )
    )
    clean = schema.validate({"filled": None, "passed": None, "colour": None, "any": None})
    assert clean["filled"] == 2.5 and math.isnan(clean["passed"])
    assert (clean["colour"], clean["any"]) == ("red", None)
    assert (
        schema.validate({"filled": 1, "passed": 2, "colour": "blue", "any": "zzz"})["any"] == "zzz"
    )
