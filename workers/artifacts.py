"""Model artifacts on disk: one folder per algorithm version with the model file and its
manifest (sha256 of each file, library versions, feature schema, metrics).

Layout: ``<artifacts dir>/<endpoint>/<name>-<version>/{model.joblib, model.onnx,
manifest.json}``: the trained scikit-learn estimator, the same model converted to ONNX
(what workers serve with), and the manifest. A model file is loaded only after its hash
matches the manifest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import ArtifactError

MANIFEST = "manifest.json"
MODEL_FILE = "model.joblib"
ONNX_FILE = "model.onnx"
# Raised when the manifest's layout changes; older artifacts are retrained by `mlq train`.
MANIFEST_FORMAT = 3


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def artifact_dir(artifacts_dir: Path, endpoint: str, name: str, version: str) -> Path:
    return artifacts_dir / endpoint / f"{name.replace(' ', '_')}-{version}"


@dataclass(frozen=True)
class Artifact:
    """A manifest read from disk, with the folder it describes."""

    folder: Path
    manifest: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, str]:
        m = self.manifest
        return (m["endpoint"], m["name"], m["version"])

    @property
    def sha256(self) -> str:
        return str(self.manifest["files"][MODEL_FILE]["sha256"])

    def verify(self) -> None:
        """Raise ArtifactError unless the manifest is current and every file matches its hash."""
        if self.manifest.get("format") != MANIFEST_FORMAT:
            raise ArtifactError(
                f"{self.folder} was built by another mlqueue version (manifest format "
                f"{self.manifest.get('format')}, expected {MANIFEST_FORMAT}): run `mlq train`"
            )
        for filename, meta in self.manifest["files"].items():
            path = self.folder / filename
            if not path.is_file():
                raise ArtifactError(f"{path} is missing; run `mlq train` to build it")
            actual = sha256_of(path)
            if actual != meta["sha256"]:
                raise ArtifactError(
                    f"{path} does not match its manifest (sha256 {actual[:12]}..., manifest "
                    f"says {meta['sha256'][:12]}...): refusing to load it; retrain with "
                    "`mlq train --force` or restore the file"
                )


def read_artifact(folder: Path) -> Artifact:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing; run `mlq train`") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON: {exc}") from None
    return Artifact(folder, manifest)


def find_artifacts(artifacts_dir: Path) -> Iterator[Artifact]:
    """Every artifact under the directory, in a stable order."""
    for manifest in sorted(artifacts_dir.glob(f"*/*/{MANIFEST}")):
        yield read_artifact(manifest.parent)
