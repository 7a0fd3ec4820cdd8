"""Registering a fitted scikit-learn model so that every worker serves it.

Usage::

    from workers.registration import register_model

    register_model(pipeline, endpoint="iris", name="forest", version="1",
                   sample=X_train.head(300), status="production")

or from the command line: ``mlq models add model.joblib --endpoint iris --name forest
--version 1 --sample sample.csv --trust-pickle``.

Registration infers the input schema from the sample, checks that the model predicts on
it, converts it to ONNX where skl2onnx can (checking that the conversion agrees with
scikit-learn on the sample) and publishes the files to the model store. Workers pick the
new version up without a restart.
"""

from __future__ import annotations

import getpass
import platform
import socket
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import is_classifier, is_regressor

from shared.db.engine import session_scope
from shared.errors import ConfigurationError, InvalidRecordError
from shared.lifecycle import register_version
from shared.registry import AlgorithmInfo
from workers.bundles import MANIFEST_FORMAT, Bundle, sha256_hex
from workers.conversion import TARGET_OPSET, convert, schema_columns
from workers.model_files import dump_estimator
from workers.predictors import SklearnPredictor
from workers.schema_inference import Bounds, infer_schema


def default_creator() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def library_versions() -> dict[str, str]:
    import onnxruntime
    import skl2onnx

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def model_kind(estimator: Any) -> str:
    if is_classifier(estimator):
        return "classifier"
    if is_regressor(estimator):
        return "regressor"
    raise ConfigurationError(
        f"{type(estimator).__name__} is neither a classifier nor a regressor: mlqueue serves "
        "fitted scikit-learn estimators or pipelines that end in one"
    )


def build_bundle(
    estimator: Any,
    *,
    source: bytes,
    source_format: str,
    sample: pd.DataFrame,
    endpoint: str,
    name: str,
    version: str,
    description: str = "",
    refuse_missing: bool = False,
    bounds: Bounds | None = None,
    categories: Mapping[str, Sequence[str]] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> Bundle:
    """Everything a worker needs to serve the model, checked on the sample."""
    kind = model_kind(estimator)
    schema = infer_schema(
        sample, estimator, refuse_missing=refuse_missing, bounds=bounds, categories=categories
    )
    classes = (
        tuple(str(c) for c in getattr(estimator, "classes_", ())) if kind == "classifier" else ()
    )
    try:
        columns = schema_columns(sample, schema)
    except InvalidRecordError as error:
        raise ConfigurationError(f"the sample does not fit its own schema: {error}") from None
    try:
        expected = SklearnPredictor(estimator, schema, kind=kind).predict(columns)
    except Exception as error:  # whatever the user's model raises on its own sample
        raise ConfigurationError(
            f"the model cannot predict on the sample: {type(error).__name__}: {error}"
        ) from None
    conversion = convert(estimator, sample, schema, expected, kind=kind, classes=classes)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "endpoint": endpoint,
        "name": name,
        "version": version,
        "description": description,
        "kind": kind,
        "classes": list(classes),
        "estimator": repr(estimator),
        "source_format": source_format,
        "runtime": "onnx" if conversion.onnx is not None else "sklearn",
        "runtime_note": conversion.note,
        "schema": schema.to_dict(),
        "onnx": {**conversion.spec, "check": conversion.check, "opset": TARGET_OPSET},
        "sample": {"rows": len(sample), "sha256": _frame_hash(sample)},
        "metrics": dict(metrics or {}),
        "libraries": library_versions(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return Bundle(manifest, source, conversion.onnx)


def publish(
    bundle: Bundle, *, status: str = "testing", created_by: str | None = None, reason: str = ""
) -> tuple[AlgorithmInfo, bool]:
    """Put the bundle in the model store and the registry; (the algorithm, whether it is
    new). The same file again is a no-op; another file under the same version is
    refused (ArtifactMismatchError)."""
    m = bundle.manifest
    with session_scope() as session:
        return register_version(
            session,
            endpoint=m["endpoint"],
            name=m["name"],
            version=m["version"],
            artifact=bundle.source,
            serving=bundle.onnx,
            manifest=m,
            status=status,
            created_by=created_by or default_creator(),
            reason=reason or "registered",
        )


def register_model(
    estimator: Any,
    *,
    endpoint: str,
    name: str,
    version: str,
    sample: pd.DataFrame,
    status: str = "testing",
    description: str = "",
    created_by: str | None = None,
    refuse_missing: bool = False,
    bounds: Bounds | None = None,
    categories: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Register a fitted estimator or pipeline from Python; returns its registry entry.

    The estimator is stored as a pickle (you hand it over from your own process, so it is
    trusted); workers unpickle it only if it could not be converted to ONNX.
    """
    bundle = build_bundle(
        estimator,
        source=dump_estimator(estimator),
        source_format="pickle",
        sample=sample,
        endpoint=endpoint,
        name=name,
        version=version,
        description=description,
        refuse_missing=refuse_missing,
        bounds=bounds,
        categories=categories,
    )
    info, created = publish(bundle, status=status, created_by=created_by)
    return {**info.as_dict(), "created": created}


def _frame_hash(frame: pd.DataFrame) -> str:
    return sha256_hex(frame.to_csv(index=False).encode())
