"""A model's input schema and the validation of records against it.

The schema is inferred when a model is registered (``workers/schema_inference.py``,
from a sample of its training rows) and stored with it in the registry, so a model and
the shape of its input always travel together. It names each column, its type, the
categories a string column may hold, numeric bounds, and what a missing value (null)
becomes. Validation gives one error per bad record naming the field, what was expected
and what came. Nothing here imports scikit-learn, Celery or the database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np

from shared.errors import InvalidRecordError

ColumnType = Literal["number", "integer", "string"]
# What a null becomes: refused, handed to the model as missing (it was trained with
# missing values), or replaced by a fill value (the model cannot take one).
Missing = Literal["error", "pass", "fill"]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    missing: Missing = "error"
    fill: float | str | None = None
    # Numbers: bounds a value must lie within (None: any finite number), and the range
    # the registration sample held (shown, not enforced).
    minimum: float | None = None
    maximum: float | None = None
    observed_min: float | None = None
    observed_max: float | None = None
    # Strings: the values accepted; ``closed`` False accepts any string (the model's
    # encoder handles categories it did not see in training).
    categories: tuple[str, ...] = ()
    closed: bool = True

    @cached_property
    def accepted(self) -> frozenset[str]:
        return frozenset(self.categories)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["categories"] = list(self.categories)
        return {key: value for key, value in data.items() if value not in (None, [], ())}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Column:
        values = dict(data)
        values["categories"] = tuple(values.get("categories", ()))
        return cls(**values)


@dataclass(frozen=True)
class ValidatedChunk:
    """The valid records of a chunk as one array per column, their input positions, and
    the errors of the rest."""

    columns: dict[str, np.ndarray]
    positions: list[int]
    errors: dict[int, InvalidRecordError]


@dataclass(frozen=True)
class InputSchema:
    columns: tuple[Column, ...]

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @cached_property
    def fields(self) -> frozenset[str]:
        return frozenset(self.names)

    @cached_property
    def by_name(self) -> dict[str, Column]:
        return {column.name: column for column in self.columns}

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [column.to_dict() for column in self.columns]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSchema:
        return cls(tuple(Column.from_dict(column) for column in data["columns"]))

    # -- one record ------------------------------------------------------------------

    def validate(self, record: object) -> dict[str, Any]:
        """The record's values, cleaned (strings stripped, nulls filled or NaN), or
        InvalidRecordError naming the field."""
        if not isinstance(record, Mapping):
            raise InvalidRecordError(
                None, f"a record must be a JSON object, got {json_type(record)}"
            )
        extra = sorted(str(k) for k in record if k not in self.by_name)
        if extra:
            raise InvalidRecordError(extra[0], "unknown field" + _listing(extra))
        missing = [name for name in self.names if name not in record]
        if missing:
            raise InvalidRecordError(missing[0], "missing" + _listing(missing))
        return {column.name: check_value(column, record[column.name]) for column in self.columns}

    def columns_of(self, clean: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Validated records as one array per column."""
        return {
            column.name: _array(column, [row[column.name] for row in clean])
            for column in self.columns
        }

    # -- many records ----------------------------------------------------------------

    def validate_many(self, records: Sequence[object]) -> ValidatedChunk:
        """Validate many records at once, as ``validate`` would one by one.

        Well-formed records are checked column by column; only the records this fast
        path rejects go through ``validate``, which gives their exact error (and has the
        last word: a record it accepts, a null to fill say, is used).
        """
        try:
            positions, columns = self._accept_columns(records)
        except (OverflowError, ValueError, TypeError):
            positions, columns = [], {c.name: _array(c, []) for c in self.columns}
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
            extra = self.columns_of([clean for _, clean in rescued])
            positions = positions + [position for position, _ in rescued]
            order = np.argsort(positions, kind="stable")
            columns = {
                name: np.concatenate([values, extra[name]])[order]
                for name, values in columns.items()
            }
            positions = [positions[i] for i in order]
        return ValidatedChunk(columns, positions, errors)

    def _accept_columns(self, records: Sequence[object]) -> tuple[list[int], dict[str, np.ndarray]]:
        fields = self.fields
        shaped = [i for i, r in enumerate(records) if type(r) is dict and r.keys() == fields]
        rows: list[dict[str, Any]] = [records[i] for i in shaped]  # type: ignore[misc]
        good = np.ones(len(rows), dtype=bool)
        columns: dict[str, np.ndarray] = {}
        for column in self.columns:
            raw = [row[column.name] for row in rows]
            if column.type == "string":
                stripped = [v.strip() if type(v) is str else v for v in raw]
                if column.closed:
                    ok = np.fromiter((v in column.accepted for v in stripped), bool, len(raw))
                else:
                    ok = np.fromiter((type(v) is str for v in stripped), bool, len(raw))
                good &= ok
                columns[column.name] = np.array(stripped, dtype=object)
                continue
            is_number = np.fromiter(
                (type(v) is int or type(v) is float for v in raw), bool, len(raw)
            )
            values = np.array(
                [v if ok else np.nan for v, ok in zip(raw, is_number, strict=True)],
                dtype=np.float64,
            )
            with np.errstate(invalid="ignore"):
                ok = is_number & np.isfinite(values)
                if column.minimum is not None:
                    ok &= values >= column.minimum
                if column.maximum is not None:
                    ok &= values <= column.maximum
                if column.type == "integer":
                    ok &= np.floor(values) == values
            good &= ok
            columns[column.name] = values
        keep = np.flatnonzero(good)
        return [shaped[i] for i in keep], {name: values[keep] for name, values in columns.items()}


def check_value(column: Column, value: object) -> Any:
    if value is None:
        if column.missing == "pass":
            return None if column.type == "string" else math.nan
        if column.missing == "fill":
            return column.fill
        wanted = "a string" if column.type == "string" else "a number"
        raise InvalidRecordError(column.name, f"is null; {wanted} is required")
    if column.type == "string":
        return _check_string(column, value)
    return _check_number(column, value)


def _check_number(column: Column, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRecordError(
            column.name, f"expected a number, got {json_type(value)} {short(value)}"
        )
    # Python ints compare exactly with the bounds, however large; only floats can be
    # NaN or infinite.
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRecordError(column.name, f"{value} is not a finite number")
    low = -math.inf if column.minimum is None else column.minimum
    high = math.inf if column.maximum is None else column.maximum
    if not low <= value <= high:
        raise InvalidRecordError(column.name, f"{short(value)} is out of range [{low:g}, {high:g}]")
    if column.type == "integer" and isinstance(value, float) and not value.is_integer():
        raise InvalidRecordError(column.name, f"expected a whole number, got {short(value)}")
    return float(value)


def _check_string(column: Column, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidRecordError(
            column.name, f"expected a string, got {json_type(value)} {short(value)}"
        )
    text = value.strip()
    if column.closed and text not in column.accepted:
        raise InvalidRecordError(
            column.name,
            f"unknown category {short(text)}; expected one of {', '.join(column.categories)}",
        )
    return text


def _array(column: Column, values: list[Any]) -> np.ndarray:
    if column.type == "string":
        return np.array(values, dtype=object)
    return np.array(values, dtype=np.float64)


def json_type(value: object) -> str:
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


def short(value: object, limit: int = 40) -> str:
    """A value as an error message shows it: cut short, and cheap however big or deep."""
    if isinstance(value, str) and len(value) > limit:
        value = value[:limit]  # not repr() of a whole megabyte only to cut it
    try:
        text = repr(value)
    except RecursionError:  # a list nested a thousand deep, say
        return f"<{json_type(value)} nested too deeply to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


LISTED = 20  # names listed in one message: every missing one; of thousands of extras, a few


def _listing(names: Sequence[str]) -> str:
    if len(names) == 1:
        return ""
    also = [name if len(name) <= 40 else name[:37] + "..." for name in names[1 : LISTED + 1]]
    more = len(names) - 1 - len(also)
    return f" (also: {', '.join(also)}{f' and {more} more' if more else ''})"
