"""The trained models and their artifacts: the tutorial's checks, manifests, hash checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from shared.contracts import DEFAULT_ENDPOINT, EXAMPLE_RECORD
from shared.errors import ArtifactError
from workers.artifacts import MODEL_FILE, ONNX_FILE, artifact_dir, find_artifacts, read_artifact
from workers.model_store import LoadedModel, ModelStore, load_estimator, load_model
from workers.training import split_adult


@pytest.fixture(scope="module")
def store(artifacts_dir: Path) -> ModelStore:
    models = ModelStore()
    models.load_all(artifacts_dir)
    return models


def label_of(model: LoadedModel, record: dict[str, object]) -> str:
    proba = model.predict_proba(model.schema.transform_one(model.schema.validate(record)))
    return model.classes[int(proba[0].argmax())]


def test_random_forest_labels_the_tutorial_record(store: ModelStore) -> None:
    assert (
        label_of(store.get(DEFAULT_ENDPOINT, "random forest", "0.0.1"), EXAMPLE_RECORD) == "<=50K"
    )


def test_extra_trees_labels_the_tutorial_record(store: ModelStore) -> None:
    assert label_of(store.get(DEFAULT_ENDPOINT, "extra trees", "0.0.1"), EXAMPLE_RECORD) == "<=50K"


TUTORIAL = {"random forest", "extra trees"}


def test_held_out_accuracy_is_as_the_tutorial_reports(store: ModelStore) -> None:
    split = split_adult()
    for model in (m for m in store if m.key[1] in TUTORIAL):
        predicted = model.predict_proba(model.schema.transform(split.test)).argmax(axis=1)
        accuracy = np.mean(np.asarray(model.classes)[predicted] == split.test["income"])
        assert accuracy == pytest.approx(model.artifact.manifest["metrics"]["accuracy"], abs=1e-4)
        assert accuracy > 0.82
    rf = store.get(DEFAULT_ENDPOINT, "random forest", "0.0.1")
    assert rf.artifact.manifest["metrics"]["accuracy"] == pytest.approx(0.85, abs=0.01)


def test_the_split_is_the_tutorials() -> None:
    split = split_adult()
    assert (len(split.train), len(split.test)) == (22792, 9769)


def test_manifests_describe_files_libraries_schema_and_metrics(artifacts_dir: Path) -> None:
    artifacts = {a.key: a for a in find_artifacts(artifacts_dir)}
    assert set(artifacts) >= {
        (DEFAULT_ENDPOINT, "random forest", "0.0.1"),
        (DEFAULT_ENDPOINT, "extra trees", "0.0.1"),
    }
    for artifact in artifacts.values():
        manifest = artifact.manifest
        assert len(manifest["files"][MODEL_FILE]["sha256"]) == 64
        assert len(manifest["files"][ONNX_FILE]["sha256"]) == 64
        assert {"python", "scikit-learn", "numpy", "pandas", "joblib"} <= set(manifest["libraries"])
        assert "Private" in manifest["features"]["categorical"]["workclass"]["categories"]
        assert manifest["features"]["numeric"]["age"]["min"] == 0
        assert manifest["classes"] == ["<=50K", ">50K"]
        assert manifest["training"]["split_random_state"] == 1234
        assert manifest["initial_status"] in {"production", "testing", "staging"}


def test_the_served_onnx_model_agrees_with_scikit_learn_on_held_out_rows(
    store: ModelStore,
) -> None:
    split = split_adult()
    for model in store:
        estimator = load_estimator(model.artifact)
        assert estimator.n_jobs == 1  # one process per core when serving
        features = model.schema.transform(split.test)
        expected = estimator.predict_proba(features)
        served = model.predict_proba(features)
        assert np.array_equal(expected.argmax(axis=1), served.argmax(axis=1))
        assert np.abs(expected - served).max() < 1e-4
        assert model.artifact.manifest["onnx"]["labels_agree"] == 1.0


def test_single_rows_and_chunks_give_the_same_probabilities(store: ModelStore) -> None:
    features = store.get(DEFAULT_ENDPOINT, "random forest", "0.0.1").schema.transform(
        split_adult().test.head(50)
    )
    model = store.get(DEFAULT_ENDPOINT, "random forest", "0.0.1")
    chunk = model.predict_proba(features)
    one_by_one = np.vstack([model.predict_proba(features[i : i + 1]) for i in range(50)])
    assert np.allclose(chunk, one_by_one, atol=1e-6)


@pytest.mark.parametrize("filename", [MODEL_FILE, ONNX_FILE])
def test_a_tampered_model_file_is_refused(
    artifacts_dir: Path, tmp_path: Path, filename: str
) -> None:
    source = artifact_dir(artifacts_dir, DEFAULT_ENDPOINT, "random forest", "0.0.1")
    copy = tmp_path / DEFAULT_ENDPOINT / source.name
    shutil.copytree(source, copy)
    with (copy / filename).open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        load_model(read_artifact(copy))
    with pytest.raises(ArtifactError, match="does not match its manifest"):
        ModelStore().load_all(tmp_path)


def test_a_missing_model_file_is_refused(artifacts_dir: Path, tmp_path: Path) -> None:
    source = artifact_dir(artifacts_dir, DEFAULT_ENDPOINT, "extra trees", "0.0.1")
    copy = tmp_path / "x" / source.name
    copy.mkdir(parents=True)
    shutil.copy(source / "manifest.json", copy / "manifest.json")
    with pytest.raises(ArtifactError, match="is missing; run `mlq train`"):
        load_model(read_artifact(copy))


def test_an_empty_artifacts_folder_says_to_train(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="run `mlq train` first"):
        ModelStore().load_all(tmp_path)


def test_a_broken_manifest_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "e" / "m-1"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_artifact(folder)
