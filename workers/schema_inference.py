"""Inferring a model's input schema from a sample of its training rows and the model.

The sample gives column names and types, the values a string column may hold and the
numeric ranges; the model adds the categories its encoders learned (a sample of a few
hundred rows may miss a rare one) and whether they accept unseen ones. A column with
missing values in the sample is passed to the model as missing (it was trained with
them); any other column gets a fill value (median or mode of the sample), so that a
null in a request never reaches a model that cannot take one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from shared.errors import ConfigurationError
from workers.schema import Column, ColumnType, InputSchema, Missing

Bounds = Mapping[str, tuple[float | None, float | None]]


def infer_schema(
    sample: pd.DataFrame,
    estimator: Any,
    *,
    refuse_missing: bool = False,
    bounds: Bounds | None = None,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> InputSchema:
    """The schema of ``estimator``'s input, from ``sample`` (rows without the target).

    ``refuse_missing`` makes a null an error wherever the sample has none; ``bounds``
    (per column: minimum, maximum) are enforced; ``categories`` (per column) replace the
    inferred ones and accept nothing else.
    """
    if len(sample) == 0:
        raise ConfigurationError("the sample holds no rows: give a few hundred training rows")
    names = _column_order(sample, estimator)
    learned = encoder_categories(estimator, names)
    columns = []
    for name in names:
        values = sample[name]
        kind = _column_type(name, values)
        missing: Missing = "pass" if values.isna().any() else "error" if refuse_missing else "fill"
        low, high = (bounds or {}).get(name, (None, None))
        if kind == "string":
            given = (categories or {}).get(name)
            seen, open_ended = learned.get(name, ([], False))
            allowed = (
                sorted({str(v) for v in given})
                if given is not None
                else sorted({str(v).strip() for v in values.dropna()} | set(seen))
            )
            columns.append(
                Column(
                    name,
                    kind,
                    missing,
                    fill=str(values.mode().iloc[0]).strip() if missing == "fill" else None,
                    categories=tuple(allowed),
                    closed=given is not None or not open_ended,
                )
            )
            continue
        numbers = values.dropna().astype(np.float64)
        median = float(numbers.median())
        columns.append(
            Column(
                name,
                kind,
                missing,
                fill=(round(median) if kind == "integer" else median)
                if missing == "fill"
                else None,
                minimum=low,
                maximum=high,
                observed_min=float(numbers.min()),
                observed_max=float(numbers.max()),
            )
        )
    return InputSchema(tuple(columns))


def _column_order(sample: pd.DataFrame, estimator: Any) -> list[str]:
    names = [str(c) for c in sample.columns]
    if len(set(names)) != len(names):
        raise ConfigurationError("the sample has duplicate column names")
    expected = getattr(estimator, "feature_names_in_", None)
    if expected is not None:
        wanted = [str(c) for c in expected]
        missing = [c for c in wanted if c not in names]
        extra = [c for c in names if c not in wanted]
        if missing or extra:
            raise ConfigurationError(
                "the sample's columns are not the model's input: "
                + "; ".join(
                    part
                    for part in (
                        f"missing {', '.join(missing)}" if missing else "",
                        f"not used by the model {', '.join(extra)} (drop the target column)"
                        if extra
                        else "",
                    )
                    if part
                )
            )
        return wanted
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is not None and n_features != len(names):
        raise ConfigurationError(
            f"the model takes {n_features} features and the sample has {len(names)} columns "
            "(drop the target column)"
        )
    return names


def _column_type(name: str, values: pd.Series) -> ColumnType:
    if pd.api.types.is_bool_dtype(values):
        raise ConfigurationError(f"column {name!r} is boolean: give it as 0 and 1 (integers)")
    if pd.api.types.is_datetime64_any_dtype(values):
        raise ConfigurationError(f"column {name!r} holds dates: give them as numbers or strings")
    if pd.api.types.is_integer_dtype(values):
        return "integer"
    if pd.api.types.is_numeric_dtype(values):
        return "number"
    odd = [v for v in values.dropna() if not isinstance(v, str)]
    if odd:
        raise ConfigurationError(
            f"column {name!r} mixes strings with {type(odd[0]).__name__} values"
        )
    return "string"


def encoder_categories(estimator: Any, columns: Iterable[str]) -> dict[str, tuple[list[str], bool]]:
    """Per raw input column: the categories an encoder in the model learned, and whether
    that encoder accepts categories it did not learn."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    raw = set(columns)
    found: dict[str, tuple[list[str], bool]] = {}

    def visit(node: Any, names: list[str] | None) -> None:
        if isinstance(node, Pipeline):
            for _, step in node.steps:
                visit(step, names)
        elif isinstance(node, ColumnTransformer):
            for _, transformer, selection in node.transformers_:
                if not isinstance(transformer, str):
                    visit(transformer, _selected(node, selection))
        elif isinstance(node, OneHotEncoder | OrdinalEncoder):
            inputs = names or [str(n) for n in getattr(node, "feature_names_in_", [])]
            for name, learned in zip(inputs, node.categories_, strict=False):
                if name in raw:
                    found[name] = (
                        [str(c) for c in learned if not pd.isna(c)],
                        _accepts_unknown(node),
                    )

    visit(estimator, None)
    return found


def _selected(transformer: Any, selection: Any) -> list[str] | None:
    names = [str(n) for n in getattr(transformer, "feature_names_in_", [])]
    if isinstance(selection, str):
        return [selection]
    if isinstance(selection, slice):
        return names[selection] or None
    if callable(selection):
        return None
    items = list(selection)
    if all(isinstance(item, str) for item in items):
        return [str(item) for item in items]
    if names and all(isinstance(item, bool | np.bool_) for item in items):
        return [n for n, keep in zip(names, items, strict=True) if keep]
    if names and all(isinstance(item, int | np.integer) for item in items):
        return [names[int(i)] for i in items]
    return None


def _accepts_unknown(encoder: Any) -> bool:
    handle = getattr(encoder, "handle_unknown", "error")
    return handle in ("ignore", "infrequent_if_exist", "warn", "use_encoded_value")
