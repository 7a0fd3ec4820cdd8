"""A registered model as files: the model as it was registered, its ONNX conversion,
and a manifest (input schema, classes, how to feed the ONNX model, the agreement
check, library versions, hashes of the files).

Registration builds a bundle and publishes it to the model store; `mlq train` also keeps
the built-in models' bundles under ``artifacts/`` so that a fresh database gets them
without training again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from shared.errors import ArtifactError

MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
# Raised when the manifest's layout changes; older bundles are rebuilt by `mlq train`.
MANIFEST_FORMAT = 4
SOURCE_FILES = {"pickle": "model.pkl", "skops": "model.skops"}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Bundle:
    manifest: dict[str, Any]
    source: bytes
    onnx: bytes | None

    @property
    def key(self) -> tuple[str, str, str]:
        m = self.manifest
        return (m["endpoint"], m["name"], m["version"])

    @cached_property
    def artifact_sha256(self) -> str:
        """The hash of the model as registered: what names this version forever."""
        return sha256_hex(self.source)

    @property
    def serving(self) -> bytes:
        """What workers load: the ONNX model when there is one."""
        return self.onnx if self.onnx is not None else self.source

    def files(self) -> dict[str, bytes]:
        files = {SOURCE_FILES[self.manifest["source_format"]]: self.source}
        if self.onnx is not None:
            files[ONNX_FILE] = self.onnx
        return files

    def save(self, folder: Path) -> None:
        """Write the bundle, swapping the whole folder at once (never half a bundle)."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder.parent))
        try:
            files = self.files()
            for name, data in files.items():
                (staging / name).write_bytes(data)
            manifest = {
                **self.manifest,
                "files": {
                    name: {"sha256": sha256_hex(d), "bytes": len(d)} for name, d in files.items()
                },
            }
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            if folder.exists():
                shutil.rmtree(folder)
            staging.rename(folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> Bundle:
        """Read a bundle back, refusing it unless every file matches its hash."""
        path = folder / MANIFEST
        try:
            manifest = json.loads(path.read_text())
        except FileNotFoundError:
            raise ArtifactError(f"{path} is missing") from None
        except json.JSONDecodeError as error:
            raise ArtifactError(f"{path} is not valid JSON: {error}") from None
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ArtifactError(
                f"{folder} was built by another mlqueue version (manifest format "
                f"{manifest.get('format')}, expected {MANIFEST_FORMAT}): run `mlq train --force`"
            )
        data = {}
        for name, meta in manifest["files"].items():
            try:
                content = (folder / name).read_bytes()
            except FileNotFoundError:
                raise ArtifactError(f"{folder / name} is missing") from None
            if sha256_hex(content) != meta["sha256"]:
                raise ArtifactError(
                    f"{folder / name} does not match its manifest: refusing to load it"
                )
            data[name] = content
        manifest.pop("files")
        source = data[SOURCE_FILES[manifest["source_format"]]]
        return cls(manifest, source, data.get(ONNX_FILE))


def bundle_dir(artifacts_dir: Path, endpoint: str, name: str, version: str) -> Path:
    return artifacts_dir / endpoint / f"{name.replace(' ', '_')}-{version}"
