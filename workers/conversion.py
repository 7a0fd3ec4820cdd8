"""Converting a fitted scikit-learn model to ONNX (skl2onnx) and checking that the
converted model answers as the original does on the registration sample.

A model is served through ONNX only when it converts and agrees: every label the same
and probabilities (or a regressor's values) within a tolerance. Otherwise it is served
by scikit-learn itself, and the registry says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from workers.predictors import OnnxPredictor, Prediction
from workers.schema import InputSchema

# Converted models compute in float32: a label may differ from scikit-learn's only when
# two classes are this close, which the check on the sample rules out.
MAX_PROBABILITY_DIFFERENCE = 1e-4
# A regressor's value may differ by this much relative to the spread of its values.
MAX_RELATIVE_VALUE_DIFFERENCE = 1e-4
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


@dataclass(frozen=True)
class Conversion:
    """The ONNX model and how columns feed it, or why there is none."""

    onnx: bytes | None
    spec: dict[str, Any]
    check: dict[str, Any]
    note: str = ""


def final_estimator(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def convert(
    estimator: Any,
    sample: pd.DataFrame,
    schema: InputSchema,
    expected: Prediction,
    *,
    kind: str,
    classes: tuple[str, ...],
) -> Conversion:
    """Convert and check against ``expected`` (the estimator's own answers on the
    sample); a model that fails either is reported, not raised."""
    from skl2onnx import to_onnx

    options = {id(final_estimator(estimator)): {"zipmap": False}} if kind == "classifier" else {}
    attempts = [("columns", _typed_frame(sample, schema))]
    if all(column.type != "string" for column in schema.columns):
        attempts.append(("matrix", sample[list(schema.names)].to_numpy(np.float32)))
    failures = []
    for mode, example in attempts:
        try:
            model = to_onnx(estimator, example[:1], options=options, target_opset=TARGET_OPSET)
        except Exception as error:  # skl2onnx raises many kinds for what it cannot convert
            failures.append(f"{mode}: {type(error).__name__}: {str(error).splitlines()[0]}")
            continue
        onnx = bytes(model.SerializeToString())
        spec = _spec(model, schema, mode)
        try:
            predictor = OnnxPredictor(onnx, spec, kind=kind, classes=classes)
            check = agreement(expected, predictor.predict(schema_columns(sample, schema)))
        except Exception as error:  # a model that converts but cannot run on its sample
            failures.append(f"{mode}: runs badly: {type(error).__name__}: {error}")
            continue
        if check["agrees"]:
            return Conversion(onnx, spec, check)
        failures.append(f"{mode}: disagrees with scikit-learn on the sample: {check}")
    return Conversion(None, {}, {}, note="; ".join(failures))


def _typed_frame(sample: pd.DataFrame, schema: InputSchema) -> pd.DataFrame:
    """The sample as skl2onnx should see it: strings as objects, integers as int64,
    other numbers as float32 (what ONNX tree ensembles compute in)."""
    frame = pd.DataFrame(index=range(len(sample)))
    for column in schema.columns:
        values = sample[column.name].reset_index(drop=True)
        if column.type == "string":
            frame[column.name] = values.astype(object)
        elif column.type == "integer":
            frame[column.name] = values.astype(np.int64)
        else:
            frame[column.name] = values.astype(np.float32)
    return frame


def _spec(model: Any, schema: InputSchema, mode: str) -> dict[str, Any]:
    inputs = list(model.graph.input)
    if mode == "matrix":
        return {
            "matrix": {"name": inputs[0].name, "dtype": "float32", "columns": list(schema.names)}
        }
    types = {1: "float32", 11: "float64", 7: "int64", 8: "string"}
    return {
        "inputs": [
            {"name": item.name, "column": name, "dtype": types[item.type.tensor_type.elem_type]}
            for item, name in zip(inputs, schema.names, strict=True)
        ]
    }


def schema_columns(sample: pd.DataFrame, schema: InputSchema) -> dict[str, np.ndarray]:
    """The sample's columns as validation hands them to a predictor."""
    records = sample[list(schema.names)].astype(object).where(sample.notna(), None)
    return schema.columns_of([schema.validate(r) for r in records.to_dict("records")])


def agreement(expected: Prediction, actual: Prediction) -> dict[str, Any]:
    """How closely two predictions of the same rows match, and whether that is enough."""
    if expected.values is not None:
        assert actual.values is not None
        spread = float(np.ptp(expected.values)) or 1.0
        difference = float(np.abs(expected.values - actual.values).max())
        return {
            "rows": len(expected.values),
            "max_abs_difference": difference,
            "agrees": difference <= MAX_RELATIVE_VALUE_DIFFERENCE * spread,
        }
    assert expected.labels is not None and actual.labels is not None
    labels_agree = float(np.mean(np.array(expected.labels) == np.array(actual.labels)))
    check: dict[str, Any] = {"rows": len(expected.labels), "labels_agree": labels_agree}
    if expected.probabilities is not None:
        if actual.probabilities is None:
            return {**check, "agrees": False, "reason": "no probabilities"}
        difference = float(np.abs(expected.probabilities - actual.probabilities).max())
        check["max_abs_difference"] = difference
        return {**check, "agrees": labels_agree == 1.0 and difference <= MAX_PROBABILITY_DIFFERENCE}
    return {**check, "agrees": labels_agree == 1.0}
