"""Registering users' models: schema inference from a sample, ONNX conversion checked
against scikit-learn (or scikit-learn serving when conversion fails), and safe loading
of model files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from examples.user_models import diabetes, iris, log_scaled_iris, relationship
from shared.errors import ConfigurationError, InvalidRecordError
from workers.bundles import Bundle
from workers.model_files import dump_estimator, load_estimator, read_model_file
from workers.predictors import OnnxPredictor, Prediction, SklearnPredictor
from workers.registration import build_bundle
from workers.schema import InputSchema


def bundle_of(model: object, sample: pd.DataFrame, name: str = "m") -> Bundle:
    return build_bundle(
        model,
        source=dump_estimator(model),
        source_format="pickle",
        sample=sample,
        endpoint="e",
        name=name,
        version="1",
    )


def serve(bundle: Bundle, records: list[dict[str, object]]) -> Prediction:
    """What a worker answers for these records, through the runtime the bundle says."""
    m = bundle.manifest
    schema = InputSchema.from_dict(m["schema"])
    columns = schema.validate_many(records).columns
    if m["runtime"] == "onnx":
        assert bundle.onnx is not None
        predictor = OnnxPredictor(
            bundle.onnx, m["onnx"], kind=m["kind"], classes=tuple(m["classes"])
        )
        return predictor.predict(columns)
    estimator = load_estimator(bundle.source, m["source_format"])
    return SklearnPredictor(estimator, schema, kind=m["kind"]).predict(columns)


def test_a_numeric_classifier_converts_and_answers_as_scikit_learn_does() -> None:
    model, features, _ = iris()
    bundle = bundle_of(model, features.head(100))
    m = bundle.manifest
    assert (m["kind"], m["runtime"], m["classes"]) == (
        "classifier",
        "onnx",
        ["setosa", "versicolor", "virginica"],
    )
    assert [c["type"] for c in m["schema"]["columns"]] == ["number"] * 4
    records = features.tail(50).to_dict("records")
    served = serve(bundle, records)
    assert served.labels == [str(x) for x in model.predict(features.tail(50))]
    assert served.probabilities is not None
    assert np.abs(served.probabilities - model.predict_proba(features.tail(50))).max() < 1e-4


def test_a_multiclass_pipeline_takes_its_categories_from_the_encoder() -> None:
    model, features, _ = relationship()
    bundle = bundle_of(model, features.head(50))  # too few rows to hold every education
    columns = {c["name"]: c for c in bundle.manifest["schema"]["columns"]}
    learned = model.named_steps["prepare"].named_transformers_["categories"].categories_[2]
    assert set(columns["education"]["categories"]) == set(learned)
    # OneHotEncoder(handle_unknown="ignore") takes an unseen category: so does the schema.
    assert columns["education"]["closed"] is False
    assert bundle.manifest["runtime"] == "onnx"
    assert len(bundle.manifest["classes"]) == 6
    records = features.tail(200).to_dict("records")
    assert serve(bundle, records).labels == list(model.predict(features.tail(200)))


def test_a_regressor_answers_values() -> None:
    model, features, _ = diabetes()
    bundle = bundle_of(model, features.head(200))
    assert (bundle.manifest["kind"], bundle.manifest["classes"]) == ("regressor", [])
    served = serve(bundle, features.tail(40).to_dict("records"))
    assert served.values is not None and served.labels is None
    expected = model.predict(features.tail(40))
    assert np.abs(served.values - expected).max() <= 1e-4 * np.ptp(expected) + 1e-3


def test_a_model_onnx_cannot_take_is_served_by_scikit_learn_and_says_why() -> None:
    model, features, _ = log_scaled_iris()
    bundle = bundle_of(model, features.head(60))
    assert bundle.manifest["runtime"] == "sklearn" and bundle.onnx is None
    assert "FunctionTransformer" in bundle.manifest["runtime_note"]
    assert serve(bundle, features.tail(10).to_dict("records")).labels == list(
        model.predict(features.tail(10))
    )


def test_the_sample_must_be_the_models_input() -> None:
    model, features, _ = iris()
    with pytest.raises(ConfigurationError, match=r"not used by the model target.*drop the target"):
        bundle_of(model, features.head(20).assign(target=1))
    with pytest.raises(ConfigurationError, match="missing petal width"):
        bundle_of(model, features.head(20).drop(columns=["petal width (cm)"]))
    with pytest.raises(ConfigurationError, match="no rows"):
        bundle_of(model, features.head(0))


def test_missing_values_are_filled_where_the_model_never_saw_one() -> None:
    model, features, _ = iris()
    bundle = bundle_of(model, features.head(100))
    schema = InputSchema.from_dict(bundle.manifest["schema"])
    sepal = schema.by_name["sepal length (cm)"]
    assert sepal.missing == "fill" and sepal.fill == pytest.approx(
        features.head(100).iloc[:, 0].median()
    )
    record = features.iloc[0].to_dict() | {"sepal length (cm)": None}
    assert schema.validate(record)["sepal length (cm)"] == sepal.fill


def test_validation_errors_name_the_field_for_any_model() -> None:
    model, features, _ = relationship()
    schema = InputSchema.from_dict(bundle_of(model, features.head(100)).manifest["schema"])
    good = features.iloc[0].to_dict()
    with pytest.raises(InvalidRecordError) as caught:
        schema.validate({**good, "hours-per-week": "forty"})
    assert caught.value.field == "hours-per-week"
    assert caught.value.reason == "expected a number, got a string 'forty'"
    with pytest.raises(InvalidRecordError, match="unknown field"):
        schema.validate({**good, "income": ">50K"})


def test_the_same_estimator_serialises_to_the_same_bytes() -> None:
    model, _, _ = iris()
    assert dump_estimator(model) == dump_estimator(iris()[0])


def test_a_pickle_is_read_only_when_trusted(tmp_path: Path) -> None:
    model, _, _ = iris()
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    with pytest.raises(ConfigurationError, match="loading one runs whatever code"):
        read_model_file(path, trust_pickle=False)
    estimator, data, fmt = read_model_file(path, trust_pickle=True)
    assert (fmt, data) == ("pickle", path.read_bytes())
    assert list(estimator.classes_) == list(model.classes_)


def test_a_skops_file_of_scikit_learn_types_needs_no_trust(tmp_path: Path) -> None:
    model, features, _ = iris()
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    estimator, _, fmt = read_model_file(path, trust_pickle=False)
    assert fmt == "skops"
    assert list(estimator.predict(features.head(5))) == list(model.predict(features.head(5)))


def test_an_unknown_file_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x00")
    with pytest.raises(ConfigurationError, match="cannot tell the format"):
        read_model_file(path, trust_pickle=True)
