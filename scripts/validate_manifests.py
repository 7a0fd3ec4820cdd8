"""Check the Kubernetes manifests in deploy/k8s without a cluster and without a network.

- Kubernetes kinds: against the JSON schemas that the kubernetes-validate package bundles,
  for the oldest and the newest Kubernetes version it knows, strictly (an unknown field
  fails, as `kubectl apply` refuses it).
- KEDA kinds: against KEDA's CRDs, vendored in deploy/k8s/schemas (its README says from
  where and how they are read).
- The files as written, and what `kubectl kustomize` renders from deploy/k8s and
  deploy/k8s/dev with the example secrets: that is what a user applies. Without kubectl
  the render is skipped, except in CI, where it is an error.

Usage::

    .venv/bin/python scripts/validate_manifests.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import all_versions

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = K8S / "schemas"
# What a user applies: `kubectl apply -k deploy/k8s` or `kubectl apply -k deploy/k8s/dev`.
ENTRY_POINTS = (K8S, K8S / "dev")
KUBERNETES_VERSIONS = (all_versions()[0], all_versions()[-1])

Resource = dict[str, Any]


def load_documents(path: Path) -> list[Resource]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def kustomization_resources(directory: Path) -> Iterator[tuple[Path, Resource]]:
    """Every resource a kustomization lists, following the directories it includes."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            yield from kustomization_resources(path)
        else:
            for resource in load_documents(path):
                yield path, resource


def openapi_to_json_schema(node: Any) -> Any:
    """A CRD's openAPIV3Schema as JSON Schema that, like the API server, refuses fields
    the schema does not list."""
    if isinstance(node, list):
        return [openapi_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = {
        key: openapi_to_json_schema(value)
        for key, value in node.items()
        if not key.startswith("x-kubernetes-") and key not in ("nullable", "description")
    }
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in schema:
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False
    return schema


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """JSON Schemas by (apiVersion, kind), from the vendored CRDs."""
    schemas = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        for crd in load_documents(path):
            spec = crd["spec"]
            for version in spec["versions"]:
                api_version = f"{spec['group']}/{version['name']}"
                schemas[(api_version, spec["names"]["kind"])] = openapi_to_json_schema(
                    version["schema"]["openAPIV3Schema"]
                )
    return schemas


def resource_errors(resource: Resource) -> list[str]:
    """Why the API server would refuse this resource, as far as a schema can tell."""
    key = (resource.get("apiVersion", ""), resource.get("kind", ""))
    if key in crd_schemas():
        validator = jsonschema.Draft7Validator(crd_schemas()[key])
        return [
            f"{'.'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
            for error in validator.iter_errors(resource)
        ]
    errors = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(map(str, error.absolute_path)) or "(top)"
            errors.append(f"Kubernetes {version}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            errors.append(f"no schema: {error.message}")
    return errors


def rendered_resources(entry_point: Path, kubectl: str) -> list[Resource]:
    """What `kubectl kustomize` makes of an entry point, with the example secrets (the
    real ones are not in the repository)."""
    with tempfile.TemporaryDirectory() as temporary:
        copy = Path(temporary) / "k8s"
        shutil.copytree(K8S, copy)
        for example in copy.rglob("*.env.example"):
            example.with_suffix("").write_text(example.read_text())
        target = copy / entry_point.relative_to(K8S)
        rendered = subprocess.run(
            [kubectl, "kustomize", str(target)], capture_output=True, text=True, check=False
        )
    if rendered.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {entry_point} failed: {rendered.stderr.strip()}")
    return [document for document in yaml.safe_load_all(rendered.stdout) if document]


def label(resource: Resource) -> str:
    return f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"


def all_errors() -> tuple[list[str], list[str]]:
    """(errors, notes): every problem found, and what was not checked and why."""
    errors: list[str] = []
    notes: list[str] = []
    for path, resource in {
        (path, label(resource)): (path, resource)
        for entry_point in ENTRY_POINTS
        for path, resource in kustomization_resources(entry_point)
    }.values():
        where = f"{path.relative_to(ROOT)}: {label(resource)}"
        errors += [f"{where}: {message}" for message in resource_errors(resource)]
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        message = "kubectl not found: the kustomize renders of deploy/k8s were not checked"
        (errors if os.environ.get("CI") else notes).append(message)
        return errors, notes
    for entry_point in ENTRY_POINTS:
        name = entry_point.relative_to(ROOT)
        try:
            rendered = rendered_resources(entry_point, kubectl)
        except RuntimeError as error:
            errors.append(str(error))
            continue
        for resource in rendered:
            errors += [
                f"{name} rendered: {label(resource)}: {m}" for m in resource_errors(resource)
            ]
    return errors, notes


def main() -> int:
    errors, notes = all_errors()
    for line in notes + errors:
        print(line, file=sys.stderr)
    if not errors:
        print(
            f"deploy/k8s: valid for Kubernetes {' and '.join(KUBERNETES_VERSIONS)} and the "
            "vendored KEDA CRDs"
        )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
