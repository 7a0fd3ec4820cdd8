"""The built-in income model's input schema, inferred as `mlq train` infers it, without
training: for unit tests of validation."""

from __future__ import annotations

from functools import lru_cache

from workers.schema import InputSchema
from workers.schema_inference import infer_schema
from workers.training import ADULT_DATA, NUMERIC_BOUNDS, TARGET, categorical_columns, read_adult


@lru_cache(maxsize=1)
def adult_schema() -> InputSchema:
    everything = read_adult(ADULT_DATA)
    return infer_schema(
        everything.drop(columns=[TARGET]).head(5000),
        object(),  # no fitted encoders to read: the categories are given
        refuse_missing=True,
        bounds=NUMERIC_BOUNDS,
        categories={c: sorted(everything[c].unique()) for c in categorical_columns(everything)},
    )
