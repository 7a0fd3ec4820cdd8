"""docker-compose.yml and its RabbitMQ variant, checked without a Docker engine: the
schema (make lint runs check-jsonschema against the compose spec), the guarantees the
stack promises, and that it runs the same commands the tests run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from producer.local_processes import api_command, beat_command, flower_command, worker_command
from shared.contracts import QUEUE_BATCH, QUEUES

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("migrate", "worker-single", "worker-batch", "beat", "flower", "api")
COMPOSE_FILES = ("docker-compose.yml", "docker-compose.rabbitmq.yml")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


@pytest.fixture(scope="module")
def rabbitmq_variant() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.rabbitmq.yml").read_text()))


def services(compose: dict[str, Any]) -> dict[str, Any]:
    return dict(compose["services"])


def test_workers_run_the_tests_worker_command(compose: dict[str, Any]) -> None:
    single = [q for q in QUEUES if q != QUEUE_BATCH]
    assert services(compose)["worker-single"]["command"] == worker_command(
        concurrency=1, hostname="single@%h", queues=tuple(single)
    )
    assert services(compose)["worker-batch"]["command"] == worker_command(
        concurrency=2, hostname="batch@%h", queues=(QUEUE_BATCH,)
    )
    served = {
        q
        for name in ("worker-single", "worker-batch")
        for q in services(compose)[name]["command"][7].split("=")[1].split(",")
    }
    assert served == set(QUEUES)


def test_beat_and_flower_run_the_tests_commands(compose: dict[str, Any]) -> None:
    assert services(compose)["beat"]["command"] == beat_command()
    assert services(compose)["flower"]["command"] == flower_command(port=5555)


def test_the_api_runs_the_tests_command_and_is_health_checked(compose: dict[str, Any]) -> None:
    api = services(compose)["api"]
    assert api["command"] == api_command(host="0.0.0.0", port=8000, workers=2)
    assert "/health/ready" in " ".join(api["healthcheck"]["test"])


def test_the_one_shot_step_migrates_and_trains(compose: dict[str, Any]) -> None:
    migrate = services(compose)["migrate"]
    assert migrate["command"][-1] == "mlq db upgrade && mlq train"
    assert migrate["restart"] == "no"


def test_services_wait_for_what_they_need(compose: dict[str, Any]) -> None:
    for name in ("worker-single", "worker-batch", "beat", "flower", "api"):
        needs = services(compose)[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully", name
        assert needs["postgres"]["condition"] == "service_healthy", name
        assert needs["redis"]["condition"] == "service_healthy", name
    for name in ("redis", "postgres"):
        assert "healthcheck" in services(compose)[name], name


def test_redis_persists_and_never_evicts(compose: dict[str, Any]) -> None:
    command = " ".join(services(compose)["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert "redis-data:/data" in services(compose)["redis"]["volumes"]


@pytest.mark.parametrize("compose_file", COMPOSE_FILES)
def test_no_secret_is_written_in_the_compose_file(compose_file: str) -> None:
    text = (ROOT / compose_file).read_text()
    for line in text.splitlines():
        if re.search(r"PASSWORD|BASIC_AUTH|:[^/@\s]*@", line) and "=" not in line.split("#")[0]:
            assert "${" in line or "$$" in line or line.strip().startswith("#"), line
    example = (ROOT / ".env.example").read_text()
    for variable in re.findall(r"\$\{(\w+):\?", text):
        assert f"{variable}=" in example, f"{variable} is missing from .env.example"


def test_flower_requires_authentication(compose: dict[str, Any]) -> None:
    environment = services(compose)["flower"]["environment"]
    assert environment["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")


def test_every_app_service_uses_the_one_image_and_only_migrate_the_artifacts_volume(
    compose: dict[str, Any],
) -> None:
    for name in APP_SERVICES:
        service = services(compose)[name]
        assert service["image"] == "mlqueue:latest" and service["build"] == "."
        # Workers get their models from the model store in PostgreSQL.
        assert ("artifacts:/artifacts" in service.get("volumes", [])) is (name == "migrate")


def test_the_rabbitmq_variant_moves_every_broker_user_to_rabbitmq(
    compose: dict[str, Any], rabbitmq_variant: dict[str, Any]
) -> None:
    overrides = services(rabbitmq_variant)
    users = [
        name
        for name, s in services(compose).items()
        if "MLQ_BROKER_URL" in s.get("environment", {})
    ]
    assert set(APP_SERVICES) <= set(users)
    for name in users:
        environment = overrides[name]["environment"]
        assert re.fullmatch(
            r"amqp://mlq:\$\{RABBITMQ_PASSWORD:\?[^}]*\}@rabbitmq:5672//",
            environment["MLQ_BROKER_URL"],
        ), name
        # Redis stays the result backend.
        assert set(environment) == {"MLQ_BROKER_URL"}, name
        assert overrides[name]["depends_on"]["rabbitmq"]["condition"] == "service_healthy", name


def test_rabbitmq_is_health_checked_and_keeps_its_queues(rabbitmq_variant: dict[str, Any]) -> None:
    rabbitmq = services(rabbitmq_variant)["rabbitmq"]
    assert "healthcheck" in rabbitmq
    assert rabbitmq["environment"]["RABBITMQ_DEFAULT_PASS"].startswith("${RABBITMQ_PASSWORD:?")
    # Its data lives under its node name, rabbit@<hostname>.
    assert rabbitmq["hostname"] == "rabbitmq"
    assert "rabbitmq-data:/var/lib/rabbitmq" in rabbitmq["volumes"]
