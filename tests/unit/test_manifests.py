"""deploy/k8s, checked without a cluster: every manifest against the Kubernetes and KEDA
schemas (scripts/validate_manifests.py, which make lint runs too), the guarantees the
deployment promises, and that its pods run the commands the tests run."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from producer.local_processes import api_command, beat_command, flower_command, worker_command
from scripts import validate_manifests
from shared.contracts import QUEUE_BATCH, QUEUES
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s" / "base"
WORKERS = ("mlq-worker-single", "mlq-worker-batch")
MLQ_PODS = ("mlq-api", "mlq-worker-single", "mlq-worker-batch", "mlq-beat", "mlq-flower")
SECRET_URLS = ("MLQ_BROKER_URL", "MLQ_RESULT_BACKEND", "MLQ_DATABASE_URL")

Resource = dict[str, Any]


@pytest.fixture(scope="module")
def manifests() -> dict[str, Resource]:
    return {
        f"{resource['kind']}/{resource['metadata']['name']}": resource
        for _, resource in validate_manifests.kustomization_resources(BASE)
    }


def env_file(path: Path) -> dict[str, str]:
    lines = (line for line in path.read_text().splitlines() if line and not line.startswith("#"))
    return dict(line.split("=", 1) for line in lines)


def pod(manifests: dict[str, Resource], name: str) -> Resource:
    kind = "Job" if name == "mlq-migrate" else "Deployment"
    return dict(manifests[f"{kind}/{name}"]["spec"]["template"]["spec"])


def container(manifests: dict[str, Resource], name: str) -> Resource:
    return dict(pod(manifests, name)["containers"][0])


def test_every_manifest_is_valid_offline() -> None:
    errors, _ = validate_manifests.all_errors()
    assert errors == []


def test_the_schemas_refuse_a_misspelt_field(manifests: dict[str, Resource]) -> None:
    scaled = copy.deepcopy(manifests["ScaledObject/mlq-worker-batch"])
    scaled["spec"]["minReplicas"] = scaled["spec"].pop("minReplicaCount")
    worker = copy.deepcopy(manifests["Deployment/mlq-worker-batch"])
    worker["spec"]["template"]["spec"]["terminationGracePeriod"] = 660
    assert any("minReplicas" in e for e in validate_manifests.resource_errors(scaled))
    assert any("terminationGracePeriod" in e for e in validate_manifests.resource_errors(worker))


def test_workers_run_the_tests_worker_command(manifests: dict[str, Resource]) -> None:
    single = tuple(q for q in QUEUES if q != QUEUE_BATCH)
    assert container(manifests, "mlq-worker-single")["command"] == worker_command(
        concurrency=1, hostname="single@%h", queues=single
    )
    assert container(manifests, "mlq-worker-batch")["command"] == worker_command(
        concurrency=2, hostname="batch@%h", queues=(QUEUE_BATCH,)
    )


def test_beat_flower_and_migrate_run_the_compose_commands(manifests: dict[str, Resource]) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert container(manifests, "mlq-beat")["command"] == beat_command()
    assert container(manifests, "mlq-flower")["command"] == flower_command(port=5555)
    assert container(manifests, "mlq-migrate")["command"] == compose["migrate"]["command"]
    api = container(manifests, "mlq-api")
    assert api["command"] == api_command(host="0.0.0.0", port=8000, workers=2)
    assert api["command"] == compose["api"]["command"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"


@pytest.mark.parametrize("worker", WORKERS)
def test_keda_scales_each_worker_on_the_queues_it_consumes(
    manifests: dict[str, Resource], worker: str
) -> None:
    scaled = manifests[f"ScaledObject/{worker}"]["spec"]
    command = container(manifests, worker)["command"]
    queues = next(arg for arg in command if arg.startswith("--queues=")).split("=")[1]
    broker_db = urlsplit(env_file(BASE / "secrets.env.example")["MLQ_BROKER_URL"]).path[1:]
    assert scaled["scaleTargetRef"]["name"] == worker
    assert sorted(t["metadata"]["listName"] for t in scaled["triggers"]) == sorted(
        queues.split(",")
    )
    for trigger in scaled["triggers"]:
        assert trigger["type"] == "redis"
        assert trigger["metadata"]["databaseIndex"] == broker_db
        assert trigger["authenticationRef"]["name"] == "mlq-redis-broker"
    # KEDA owns the count: a replicas field would reset it on every apply.
    assert "replicas" not in manifests[f"Deployment/{worker}"]["spec"]


@pytest.mark.parametrize("worker", WORKERS)
def test_a_worker_is_given_time_to_finish_what_it_runs(
    manifests: dict[str, Resource], worker: str
) -> None:
    time_limit = int(env_file(BASE / "settings.env")["MLQ_TASK_TIME_LIMIT"])
    assert pod(manifests, worker)["terminationGracePeriodSeconds"] > time_limit
    # No liveness probe by design (the manifest says why): a broker outage must not
    # restart every worker.
    assert "livenessProbe" not in container(manifests, worker)


def test_there_is_exactly_one_beat(manifests: dict[str, Resource]) -> None:
    beat = manifests["Deployment/mlq-beat"]["spec"]
    assert beat["replicas"] == 1
    assert beat["strategy"]["type"] == "Recreate"
    scalers = [
        r for r in manifests.values() if r["kind"] in ("ScaledObject", "HorizontalPodAutoscaler")
    ]
    assert all(r["spec"]["scaleTargetRef"]["name"] != "mlq-beat" for r in scalers)


@pytest.mark.parametrize("name", [*MLQ_PODS, "mlq-migrate"])
def test_pods_run_as_the_image_user_on_a_read_only_root(
    manifests: dict[str, Resource], name: str
) -> None:
    settings = env_file(BASE / "settings.env")
    spec, main = pod(manifests, name), container(manifests, name)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 1000
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["resources"]["requests"] and main["resources"]["limits"]["memory"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    for writable in (settings["MLQ_HOME"], "/tmp"):
        assert "emptyDir" in volumes[mounts[writable]["name"]], writable
    if name == "mlq-migrate":
        artifacts = mounts[settings["MLQ_ARTIFACTS_DIR"]]
        assert volumes[artifacts["name"]]["persistentVolumeClaim"]["claimName"] == "mlq-artifacts"
    else:
        # Workers get their models from the model store in PostgreSQL, not a shared volume.
        assert settings["MLQ_ARTIFACTS_DIR"] not in mounts
        assert all("persistentVolumeClaim" not in volume for volume in volumes.values())


@pytest.mark.parametrize("name", [*MLQ_PODS, "mlq-migrate"])
def test_secrets_come_from_the_secret_only(manifests: dict[str, Resource], name: str) -> None:
    example = env_file(BASE / "secrets.env.example")
    env = {variable["name"]: variable for variable in container(manifests, name)["env"]}
    assert set(SECRET_URLS) <= set(env)
    for variable in env.values():
        if variable["name"] in example or "PASSWORD" in variable["name"]:
            reference = variable["valueFrom"]["secretKeyRef"]
            assert reference["name"] == "mlq-secrets" and reference["key"] in example


def test_no_secret_is_written_in_the_manifests() -> None:
    for path in sorted((ROOT / "deploy" / "k8s").rglob("*.yaml")):
        text = path.read_text()
        assert "change-me" not in text, path
        assert not [url for url in text.split() if "://" in url and "@" in url], path
    assert "secrets.env" in (ROOT / ".gitignore").read_text().splitlines()


def test_keda_reads_the_broker_the_workers_use(manifests: dict[str, Resource]) -> None:
    example = env_file(BASE / "secrets.env.example")
    broker = urlsplit(example["MLQ_BROKER_URL"])
    host, port = example["KEDA_REDIS_ADDRESS"].rsplit(":", 1)
    # KEDA runs in its own namespace: the broker's short name, fully qualified.
    assert host.startswith(f"{broker.hostname}.") and int(port) == broker.port
    assert example["KEDA_REDIS_PASSWORD"] == broker.password
    keys = {
        ref["key"]
        for ref in manifests["TriggerAuthentication/mlq-redis-broker"]["spec"]["secretTargetRef"]
    }
    assert keys == {"KEDA_REDIS_ADDRESS", "KEDA_REDIS_PASSWORD"}


def test_the_settings_and_example_secrets_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    example = env_file(BASE / "secrets.env.example")
    for variable, value in {**env_file(BASE / "settings.env"), **example}.items():
        monkeypatch.setenv(variable, value)
    settings = Settings.from_env()
    assert settings.broker_url == example["MLQ_BROKER_URL"]
    assert settings.database_url.startswith("postgresql+psycopg://")


def test_the_dev_redis_persists_and_never_evicts() -> None:
    redis = next(
        r
        for r in validate_manifests.load_documents(ROOT / "deploy" / "k8s" / "dev" / "redis.yaml")
        if r["kind"] == "StatefulSet"
    )
    command = " ".join(redis["spec"]["template"]["spec"]["containers"][0]["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
