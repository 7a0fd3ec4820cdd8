"""The income classifier's features: validation of incoming records and preprocessing.

The fitted state (categories seen in training, fill values) lives in each model's
manifest as a ``FeatureSchema``, so a model and the way its inputs are prepared
always travel together. Nothing here imports Celery or the database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shared.errors import InvalidRecordError

TARGET = "income"
# The UCI file has no header; this is its column order.
ADULT_COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    TARGET,
)

# Domain bounds of the numeric features: what a real person's record can hold. Values
# outside the training range but inside these are accepted (the trees treat them like
# the nearest value they saw).
NUMERIC_BOUNDS: dict[str, tuple[float, float]] = {
    "age": (0, 130),
    "fnlwgt": (0, 1e8),
    "education-num": (1, 16),
    "capital-gain": (0, 1e7),
    "capital-loss": (0, 1e7),
    "hours-per-week": (0, 168),
}
CATEGORICAL = (
    "workclass",
    "education",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native-country",
)
# The data set's marker for an unknown value; accepted in requests and filled with the
# training mode of the column.
MISSING = "?"


@dataclass(frozen=True)
class NumericFeature:
    name: str
    minimum: float
    maximum: float
    observed_min: float
    observed_max: float
    fill: float


@dataclass(frozen=True)
class CategoricalFeature:
    """``categories`` are the values a record may hold (every value of the data set);
    ``trained`` those the model saw in training, which it encodes. A category allowed
    but unseen in training is treated like a missing value."""

    name: str
    categories: tuple[str, ...]
    trained: tuple[str, ...]
    fill: str

    @cached_property
    def index(self) -> pd.Index:
        return pd.Index(self.trained)

    @cached_property
    def fill_code(self) -> int:
        return self.trained.index(self.fill)

    @cached_property
    def code_of(self) -> dict[str, int]:
        return {category: code for code, category in enumerate(self.trained)}

    @cached_property
    def accepted(self) -> frozenset[str]:
        return frozenset((*self.categories, MISSING))


@dataclass(frozen=True)
class FeatureSchema:
    """The input a model accepts and how to turn it into its feature matrix."""

    order: tuple[str, ...]
    numeric: dict[str, NumericFeature]
    categorical: dict[str, CategoricalFeature]

    @classmethod
    def fit(cls, frame: pd.DataFrame, domain: pd.DataFrame | None = None) -> FeatureSchema:
        """Learn categories and fill values (mode, median) from training rows.

        ``domain`` (default: the training rows) gives the categories a record may hold.
        """
        domain = frame if domain is None else domain
        numeric = {}
        for name, (low, high) in NUMERIC_BOUNDS.items():
            column = frame[name]
            numeric[name] = NumericFeature(
                name, low, high, float(column.min()), float(column.max()), float(column.median())
            )
        categorical = {}
        for name in CATEGORICAL:
            known = frame[name][frame[name] != MISSING]
            allowed = domain[name][domain[name] != MISSING]
            categorical[name] = CategoricalFeature(
                name,
                tuple(sorted(allowed.unique())),
                tuple(sorted(known.unique())),
                str(known.mode().iloc[0]),
            )
        order = tuple(c for c in ADULT_COLUMNS if c != TARGET)
        return cls(order, numeric, categorical)

    def to_dict(self) -> dict[str, Any]:
        return {
            "order": list(self.order),
            "numeric": {
                n: {
                    "min": f.minimum,
                    "max": f.maximum,
                    "observed_min": f.observed_min,
                    "observed_max": f.observed_max,
                    "fill": f.fill,
                }
                for n, f in self.numeric.items()
            },
            "categorical": {
                n: {"categories": list(f.categories), "trained": list(f.trained), "fill": f.fill}
                for n, f in self.categorical.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSchema:
        numeric = {
            n: NumericFeature(
                n, f["min"], f["max"], f["observed_min"], f["observed_max"], f["fill"]
            )
            for n, f in data["numeric"].items()
        }
        categorical = {
            n: CategoricalFeature(n, tuple(f["categories"]), tuple(f["trained"]), f["fill"])
            for n, f in data["categorical"].items()
        }
        return cls(tuple(data["order"]), numeric, categorical)

    # -- validation ---------------------------------------------------------------

    def validate(self, record: object) -> dict[str, Any]:
        """The record with categorical values stripped, or InvalidRecordError naming the field."""
        if not isinstance(record, Mapping):
            raise InvalidRecordError(
                None, f"a record must be a JSON object, got {_json_type(record)}"
            )
        extra = sorted(
            str(k) for k in record if k not in self.numeric and k not in self.categorical
        )
        if extra:
            raise InvalidRecordError(extra[0], "unknown field" + _listing(extra))
        missing = [name for name in self.order if name not in record]
        if missing:
            raise InvalidRecordError(missing[0], "missing" + _listing(missing))
        clean: dict[str, Any] = {}
        for name in self.order:
            value = record[name]
            if name in self.numeric:
                clean[name] = self._check_numeric(self.numeric[name], value)
            else:
                clean[name] = self._check_categorical(self.categorical[name], value)
        return clean

    @staticmethod
    def _check_numeric(feature: NumericFeature, value: object) -> float:
        if value is None:
            raise InvalidRecordError(feature.name, "is null; a number is required")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRecordError(
                feature.name, f"expected a number, got {_json_type(value)} {_short(value)}"
            )
        # Python ints compare exactly with the bounds, however large; only floats can be
        # NaN or infinite.
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidRecordError(feature.name, f"{value} is not a finite number")
        if not feature.minimum <= value <= feature.maximum:
            raise InvalidRecordError(
                feature.name,
                f"{_short(value)} is out of range [{feature.minimum:g}, {feature.maximum:g}]",
            )
        return float(value)

    @staticmethod
    def _check_categorical(feature: CategoricalFeature, value: object) -> str:
        if value is None:
            raise InvalidRecordError(
                feature.name, f"is null; send {MISSING!r} for an unknown value"
            )
        if not isinstance(value, str):
            raise InvalidRecordError(
                feature.name, f"expected a string, got {_json_type(value)} {_short(value)}"
            )
        text = value.strip()
        if text != MISSING and text not in feature.categories:
            raise InvalidRecordError(
                feature.name,
                f"unknown category {_short(text)}; expected one of "
                f"{', '.join(feature.categories)} (or {MISSING!r} when unknown)",
            )
        return text

    @cached_property
    def fields(self) -> frozenset[str]:
        return frozenset(self.order)

    def validate_many(self, records: Sequence[object]) -> ValidatedChunk:
        """Validate many records at once, as ``validate`` would one by one.

        Well-formed records are checked column by column; only the records this fast
        path rejects go through ``validate``, which gives their exact error (and has the
        last word: a record it accepts is used).
        """
        try:
            positions, columns = self._accept_columns(records)
        except (OverflowError, ValueError, TypeError):
            positions, columns = [], {name: [] for name in self.order}
        frame = pd.DataFrame(columns, columns=list(self.order))
        errors: dict[int, InvalidRecordError] = {}
        rescued: list[tuple[int, dict[str, Any]]] = []
        accepted = set(positions)
        for position, record in enumerate(records):
            if position in accepted:
                continue
            try:
                rescued.append((position, self.validate(record)))
            except InvalidRecordError as error:
                errors[position] = error
        if rescued:
            extra = pd.DataFrame([clean for _, clean in rescued], columns=list(self.order))
            positions = positions + [position for position, _ in rescued]
            frame = pd.concat([frame, extra], ignore_index=True)
            order = np.argsort(positions, kind="stable")
            frame = frame.iloc[order].reset_index(drop=True)
            positions = [positions[i] for i in order]
        return ValidatedChunk(frame, positions, errors)

    def _accept_columns(
        self, records: Sequence[object]
    ) -> tuple[list[int], dict[str, list[Any] | np.ndarray]]:
        fields = self.fields
        shaped = [i for i, r in enumerate(records) if type(r) is dict and r.keys() == fields]
        rows = [records[i] for i in shaped]
        good = np.ones(len(rows), dtype=bool)
        columns: dict[str, list[Any] | np.ndarray] = {}
        for name in self.order:
            raw = [row[name] for row in rows]  # type: ignore[index]
            if name in self.numeric:
                feature = self.numeric[name]
                is_number = np.fromiter(
                    (type(v) is int or type(v) is float for v in raw), bool, len(raw)
                )
                values = np.array(
                    [v if ok else np.nan for v, ok in zip(raw, is_number, strict=True)],
                    dtype=np.float64,
                )
                with np.errstate(invalid="ignore"):
                    good &= is_number & (values >= feature.minimum) & (values <= feature.maximum)
                columns[name] = values
            else:
                allowed = self.categorical[name].accepted
                stripped = [v.strip() if type(v) is str else v for v in raw]
                good &= np.fromiter((v in allowed for v in stripped), bool, len(raw))
                columns[name] = stripped
        keep = np.flatnonzero(good)
        positions = [shaped[i] for i in keep]
        return positions, {
            name: values[keep] if isinstance(values, np.ndarray) else [values[i] for i in keep]
            for name, values in columns.items()
        }

    # -- preprocessing ------------------------------------------------------------

    def transform_one(self, clean: Mapping[str, Any]) -> np.ndarray:
        """The feature row of one validated record, without building a DataFrame."""
        row = np.empty((1, len(self.order)), dtype=np.float32)
        for column, name in enumerate(self.order):
            if name in self.numeric:
                row[0, column] = clean[name]
            else:
                feature = self.categorical[name]
                row[0, column] = feature.code_of.get(clean[name], feature.fill_code)
        return row

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The feature matrix for validated rows, in training column order.

        Columns are selected by name, so the order of keys in a record does not matter.
        Missing values ('?', NaN) and categories unseen in training take the training
        mode (categoricals) or median (numerics). Categoricals become the index of the
        category in the training list, as the forests were trained on.
        """
        columns = []
        for name in self.order:
            if name in self.numeric:
                values = pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float32)
                values[np.isnan(values)] = self.numeric[name].fill
            else:
                feature = self.categorical[name]
                codes = feature.index.get_indexer(frame[name].to_numpy(dtype=object))
                values = np.where(codes < 0, feature.fill_code, codes).astype(np.float32)
            columns.append(values)
        return np.column_stack(columns)

    def transform_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.transform(pd.DataFrame.from_records(list(records), columns=list(self.order)))


@dataclass(frozen=True)
class ValidatedChunk:
    """The valid records of a chunk as a frame, their input positions, and the errors."""

    frame: pd.DataFrame
    positions: list[int]
    errors: dict[int, InvalidRecordError]


def read_adult(path: str | Path) -> pd.DataFrame:
    """The UCI Adult file as a frame: stripped strings, '?' kept as the missing marker."""
    return pd.read_csv(
        path, header=None, names=list(ADULT_COLUMNS), skipinitialspace=True, na_filter=False
    )


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _short(value: object, limit: int = 40) -> str:
    """A value as an error message shows it: cut short, and cheap however big or deep."""
    if isinstance(value, str) and len(value) > limit:
        value = value[:limit]  # not repr() of a whole megabyte only to cut it
    try:
        text = repr(value)
    except RecursionError:  # a list nested a thousand deep, say
        return f"<{_json_type(value)} nested too deeply to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


LISTED = 20  # names listed in one message: every missing one; of thousands of extras, a few


def _listing(names: Sequence[str]) -> str:
    if len(names) == 1:
        return ""
    also = [name if len(name) <= 40 else name[:37] + "..." for name in names[1 : LISTED + 1]]
    more = len(names) - 1 - len(also)
    return f" (also: {', '.join(also)}{f' and {more} more' if more else ''})"
