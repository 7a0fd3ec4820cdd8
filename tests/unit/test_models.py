"""The built-in income models: the tutorial's checks, their bundles, the ONNX conversion
agreeing with scikit-learn, and hash checks on their files."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.contracts import DEFAULT_ENDPOINT, EXAMPLE_RECORD
from shared.errors import ArtifactError
from workers.bundles import MANIFEST, ONNX_FILE, SOURCE_FILES, Bundle, bundle_dir
from workers.conversion import schema_columns
from workers.model_files import load_estimator
from workers.predictors import OnnxPredictor, Prediction, SklearnPredictor
from workers.schema import InputSchema
from workers.training import PROJECT_ROOT, TARGET, split_adult

ARTIFACTS = PROJECT_ROOT / "artifacts"
TUTORIAL = ("random forest", "extra trees")


@pytest.fixture(scope="module")
def bundles(builtin_bundles: list[tuple[str, Bundle]]) -> dict[str, Bundle]:
    return {b.manifest["name"]: b for _, b in builtin_bundles if b.manifest["name"] in TUTORIAL}


def onnx_of(bundle: Bundle) -> tuple[InputSchema, OnnxPredictor]:
    m = bundle.manifest
    assert bundle.onnx is not None
    predictor = OnnxPredictor(bundle.onnx, m["onnx"], kind=m["kind"], classes=tuple(m["classes"]))
    return InputSchema.from_dict(m["schema"]), predictor


def predict(bundle: Bundle, records: list[dict[str, Any]]) -> Prediction:
    schema, predictor = onnx_of(bundle)
    return predictor.predict(schema.validate_many(records).columns)


@pytest.mark.parametrize("name", TUTORIAL)
def test_the_tutorial_models_label_the_tutorial_record(
    bundles: dict[str, Bundle], name: str
) -> None:
    assert predict(bundles[name], [EXAMPLE_RECORD]).labels == ["<=50K"]


def test_held_out_accuracy_is_as_the_tutorial_reports(bundles: dict[str, Bundle]) -> None:
    test = split_adult().test
    records = test.drop(columns=[TARGET]).to_dict("records")
    for bundle in bundles.values():
        labels = predict(bundle, records).labels
        accuracy = np.mean(np.array(labels) == test[TARGET].to_numpy())
        assert accuracy == pytest.approx(bundle.manifest["metrics"]["accuracy"], abs=1e-4)
        assert accuracy > 0.82
    assert bundles["random forest"].manifest["metrics"]["accuracy"] == pytest.approx(0.85, abs=0.01)


def test_the_split_is_the_tutorials() -> None:
    split = split_adult()
    assert (len(split.train), len(split.test)) == (22792, 9769)


def test_manifests_describe_schema_runtime_checks_and_metrics(bundles: dict[str, Bundle]) -> None:
    for bundle in bundles.values():
        m = bundle.manifest
        assert (m["endpoint"], m["kind"], m["runtime"], m["source_format"]) == (
            DEFAULT_ENDPOINT,
            "classifier",
            "onnx",
            "pickle",
        )
        assert m["classes"] == ["<=50K", ">50K"]
        assert {"python", "scikit-learn", "numpy", "pandas", "skl2onnx", "onnxruntime"} <= set(
            m["libraries"]
        )
        columns = {c["name"]: c for c in m["schema"]["columns"]}
        assert "Holand-Netherlands" in columns["native-country"]["categories"]
        assert columns["age"]["minimum"] == 0 and columns["age"]["type"] == "integer"
        assert m["onnx"]["check"]["labels_agree"] == 1.0 and m["sample"]["rows"] == 500
        assert m["metrics"]["train_rows"] == 22792


def test_the_served_onnx_model_agrees_with_scikit_learn_on_held_out_rows(
    bundles: dict[str, Bundle],
) -> None:
    test = split_adult().test.drop(columns=[TARGET])
    for bundle in bundles.values():
        schema, predictor = onnx_of(bundle)
        columns = schema_columns(test, schema)
        sklearn = SklearnPredictor(
            load_estimator(bundle.source, "pickle"), schema, kind="classifier"
        )
        expected, served = sklearn.predict(columns), predictor.predict(columns)
        assert expected.labels == served.labels
        assert expected.probabilities is not None and served.probabilities is not None
        assert np.abs(expected.probabilities - served.probabilities).max() < 1e-4


def test_single_rows_and_chunks_give_the_same_probabilities(bundles: dict[str, Bundle]) -> None:
    records = split_adult().test.drop(columns=[TARGET]).head(50).to_dict("records")
    chunk = predict(bundles["random forest"], records).probabilities
    one_by_one = np.vstack([predict(bundles["random forest"], [r]).probabilities for r in records])  # type: ignore[list-item]
    assert np.allclose(chunk, one_by_one, atol=1e-6)


def test_retraining_on_the_same_data_gives_the_same_file(bundles: dict[str, Bundle]) -> None:
    """What makes `mlq train --force` a no-op for the registry: a version names one file."""
    again = Bundle.load(bundle_dir(ARTIFACTS, DEFAULT_ENDPOINT, "random forest", "0.0.1"))
    assert again.artifact_sha256 == bundles["random forest"].artifact_sha256


@pytest.mark.parametrize("filename", [SOURCE_FILES["pickle"], ONNX_FILE])
def test_a_tampered_model_file_is_refused(tmp_path: Path, filename: str) -> None:
    source = bundle_dir(ARTIFACTS, DEFAULT_ENDPOINT, "random forest", "0.0.1")
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    with (copy / filename).open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        Bundle.load(copy)


def test_a_missing_model_file_or_manifest_is_refused(tmp_path: Path) -> None:
    source = bundle_dir(ARTIFACTS, DEFAULT_ENDPOINT, "extra trees", "0.0.1")
    copy = tmp_path / source.name
    copy.mkdir()
    with pytest.raises(ArtifactError, match=r"manifest\.json is missing"):
        Bundle.load(copy)
    shutil.copy(source / MANIFEST, copy / MANIFEST)
    with pytest.raises(ArtifactError, match="is missing"):
        Bundle.load(copy)
    (copy / MANIFEST).write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        Bundle.load(copy)
