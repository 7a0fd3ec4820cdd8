"""Flower as a real process: it lists the worker, shows a task by id, runs the HTTP
producer's round trip (async-apply, then result), refuses the UI without credentials and
leaves /metrics readable for Prometheus."""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from producer.local_processes import LocalFlower
from shared.contracts import EXAMPLE_RECORD, TASK_PREDICT
from tests.conftest import TEST_HOME

pytestmark = pytest.mark.integration

CREDENTIALS = "ops:flower-test-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def flower(worker: object) -> Iterator[LocalFlower]:
    process = LocalFlower(
        log_path=TEST_HOME / "flower.log",
        port=free_port(),
        env={"FLOWER_BASIC_AUTH": CREDENTIALS},
    )
    process.start(timeout=60)
    yield process
    process.stop()


def call(
    flower: LocalFlower, path: str, *, body: dict[str, Any] | None = None, auth: bool = True
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()
    request = urllib.request.Request(
        flower.url + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers=headers,
        method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def eventually(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def test_the_ui_and_api_refuse_requests_without_credentials(flower: LocalFlower) -> None:
    assert call(flower, "/", auth=False)[0] == 401
    assert call(flower, "/api/workers", auth=False)[0] == 401
    assert call(flower, "/", auth=True)[0] == 200


def test_metrics_stay_readable_for_prometheus(flower: LocalFlower) -> None:
    status, body = call(flower, "/metrics", auth=False)
    assert status == 200 and b"flower_" in body


def test_flower_lists_the_worker(flower: LocalFlower, clean_db: str) -> None:
    def listed() -> list[str]:
        status, body = call(flower, "/api/workers?refresh=1")
        return (
            [name for name in json.loads(body) if name.startswith("tests@")]
            if status == 200
            else []
        )

    assert eventually(listed)


def test_an_http_producer_predicts_and_polls_through_flower(
    flower: LocalFlower, clean_db: str
) -> None:
    status, body = call(
        flower,
        f"/api/task/async-apply/{TASK_PREDICT}",
        body={"kwargs": {"record": EXAMPLE_RECORD, "endpoint": "income_classifier"}},
    )
    assert status == 200, body
    task_id = json.loads(body)["task-id"]

    def finished() -> dict[str, Any] | None:
        answer = json.loads(call(flower, f"/api/task/result/{task_id}")[1])
        return answer if answer.get("state") == "SUCCESS" else None

    result = eventually(finished)
    assert result is not None, "no result through Flower"
    assert result["result"]["label"] == "<=50K"
    assert result["result"]["request_id"] == task_id

    def shown() -> dict[str, Any] | None:
        status, body = call(flower, f"/api/task/info/{task_id}")
        return json.loads(body) if status == 200 else None

    info = eventually(shown)
    assert info is not None and info["name"] == TASK_PREDICT and info["state"] == "SUCCESS"
