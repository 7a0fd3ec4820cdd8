"""Validation and preprocessing of income records: every bad input gets a clear error."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shared.contracts import EXAMPLE_RECORD
from shared.errors import InvalidRecordError
from workers.features import MISSING, FeatureSchema, read_adult
from workers.training import ADULT_DATA


@pytest.fixture(scope="module")
def schema() -> FeatureSchema:
    everything = read_adult(ADULT_DATA)
    return FeatureSchema.fit(everything.head(5000), domain=everything)


def with_(**changes: object) -> dict[str, object]:
    record = dict(EXAMPLE_RECORD)
    for key, value in changes.items():
        record[key.replace("_", "-")] = value
    return record


def test_the_tutorial_record_is_valid(schema: FeatureSchema) -> None:
    clean = schema.validate(EXAMPLE_RECORD)
    assert clean["age"] == 37.0
    assert clean["workclass"] == "Private"


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        ({k: v for k, v in EXAMPLE_RECORD.items() if k != "age"}, "age", "missing"),
        (with_(age="abc"), "age", "expected a number, got a string 'abc'"),
        (with_(age=None), "age", "is null"),
        (with_(workclass=None), "workclass", "is null; send '?'"),
        (with_(workclass="Astronaut"), "workclass", "unknown category 'Astronaut'"),
        ({**EXAMPLE_RECORD, "zodiac": "Leo"}, "zodiac", "unknown field"),
        (with_(age=-1), "age", "-1 is out of range [0, 130]"),
        (with_(age=True), "age", "expected a number, got a boolean"),
        (with_(age=math.nan), "age", "nan is not a finite number"),
        (with_(hours_per_week=169), "hours-per-week", "out of range"),
        (with_(sex=1), "sex", "expected a string, got a number"),
        (with_(race=["White"]), "race", "expected a string, got an array"),
    ],
)
def test_bad_fields_name_the_field_and_the_reason(
    schema: FeatureSchema, record: object, field: str, reason: str
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
def test_a_record_must_be_an_object(schema: FeatureSchema, record: object, kind: str) -> None:
    with pytest.raises(InvalidRecordError, match=f"must be a JSON object, got {kind}"):
        schema.validate(record)


def test_several_missing_fields_are_all_listed(schema: FeatureSchema) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        schema.validate({"age": 30})
    assert caught.value.field == "workclass"
    assert "native-country" in caught.value.reason


def test_question_mark_is_filled_with_the_training_mode(schema: FeatureSchema) -> None:
    unknown = schema.validate(with_(workclass=MISSING, occupation=" ? "))
    mode = schema.validate(
        with_(
            workclass=schema.categorical["workclass"].fill,
            occupation=schema.categorical["occupation"].fill,
        )
    )
    assert np.array_equal(schema.transform_records([unknown]), schema.transform_records([mode]))


def test_key_order_does_not_matter(schema: FeatureSchema) -> None:
    reversed_record = dict(reversed(list(EXAMPLE_RECORD.items())))
    assert np.array_equal(
        schema.transform_records([schema.validate(EXAMPLE_RECORD)]),
        schema.transform_records([schema.validate(reversed_record)]),
    )


def test_unseen_category_in_preprocessing_takes_the_mode(schema: FeatureSchema) -> None:
    frame = pd.DataFrame([with_(workclass="Astronaut"), with_(workclass="Private")])
    matrix = schema.transform(frame)
    assert np.array_equal(matrix[0], matrix[1])  # "Private" is the workclass mode


def test_a_valid_category_unseen_in_training_is_treated_as_missing(
    schema: FeatureSchema,
) -> None:
    country = schema.categorical["native-country"]
    unseen = sorted(set(country.categories) - set(country.trained))
    assert unseen, "the first 5000 rows miss some countries of the whole file"
    clean = schema.validate(with_(native_country=unseen[0]))
    as_mode = schema.validate(with_(native_country=country.fill))
    assert np.array_equal(schema.transform_one(clean), schema.transform_one(as_mode))


def test_one_record_transforms_as_a_frame_of_one_does(schema: FeatureSchema) -> None:
    for record in (EXAMPLE_RECORD, with_(workclass=MISSING), with_(age=90.5)):
        clean = schema.validate(record)
        assert np.array_equal(schema.transform_one(clean), schema.transform_records([clean]))


def test_whitespace_around_categories_is_ignored(schema: FeatureSchema) -> None:
    assert schema.validate(with_(sex=" Male "))["sex"] == "Male"


def test_schema_round_trips_through_its_manifest_form(schema: FeatureSchema) -> None:
    assert FeatureSchema.from_dict(schema.to_dict()) == schema


def test_the_fitted_schema_knows_categories_and_ranges(schema: FeatureSchema) -> None:
    assert MISSING not in schema.categorical["workclass"].categories
    assert "Private" in schema.categorical["workclass"].categories
    age = schema.numeric["age"]
    assert age.observed_min >= 17 and age.observed_max <= 90
