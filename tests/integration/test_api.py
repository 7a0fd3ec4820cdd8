"""The HTTP API as a client in any language sees it: a real `mlq serve`, a real worker,
Redis and PostgreSQL."""

from __future__ import annotations

import concurrent.futures
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from shared.contracts import EXAMPLE_RECORD
from shared.db.engine import session_scope
from shared.db.models import Feedback, MLRequest

pytestmark = pytest.mark.integration

PREDICT = "/v1/endpoints/income_classifier/predictions"


def rows_with(request_id: str) -> int:
    with session_scope() as session:
        return session.execute(
            select(func.count()).select_from(MLRequest).where(MLRequest.id == request_id)
        ).scalar_one()


def test_a_prediction_waited_for_answers_200_with_its_result(http: httpx.Client) -> None:
    answer = http.post(PREDICT, params={"wait": 30}, json={"record": EXAMPLE_RECORD})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["status"], result["label"]) == ("OK", "<=50K")
    assert result["algorithm"]["name"] == "random forest"
    assert answer.headers["location"] == f"/v1/predictions/{result['request_id']}"
    assert rows_with(result["request_id"]) == 1


def test_a_prediction_not_waited_for_is_accepted_and_read_later(http: httpx.Client) -> None:
    accepted = http.post(PREDICT, json={"record": EXAMPLE_RECORD, "status": "testing"})
    assert accepted.status_code == 202
    link = accepted.json()["links"]["self"]
    assert accepted.json()["status"] == "QUEUED"
    result = http.get(link, params={"wait": 30}).json()
    assert result["status"] == "OK" and result["algorithm"]["name"] == "extra trees"


def test_concurrent_predictions_each_get_their_own_row_and_result(http: httpx.Client) -> None:
    records = [{**EXAMPLE_RECORD, "age": 20 + i} for i in range(40)]
    records[7] = {**EXAMPLE_RECORD, "age": "old"}  # fails alone
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(
            pool.map(lambda r: http.post(PREDICT, params={"wait": 30}, json={"record": r}), records)
        )
    statuses = [a.status_code for a in answers]
    assert statuses.count(200) == 39 and statuses[7] == 422
    assert answers[7].json()["field"] == "age"
    ids = {a.json()["request_id"] for a in answers}
    assert len(ids) == 40
    with session_scope() as session:
        stored = dict(session.execute(select(MLRequest.id, MLRequest.input)).all())
    missing = [(a.status_code, a.json()) for a in answers if a.json()["request_id"] not in stored]
    assert not missing
    assert {stored[a.json()["request_id"]]["age"] for a in answers} == {r["age"] for r in records}
    metrics = http.get("/metrics").text
    assert "mlq_api_group_size_count" in metrics


def test_a_grouped_request_is_read_by_its_own_id_with_mlq_result(http: httpx.Client) -> None:
    from producer import Client

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda _: http.post(PREDICT, json={"record": EXAMPLE_RECORD}), range(16))
        )
    for answer in answers:
        assert Client().result(answer.json()["request_id"], timeout=30)["status"] == "OK"


def test_an_invalid_record_is_a_422_naming_the_field(http: httpx.Client) -> None:
    answer = http.post(
        PREDICT, params={"wait": 30}, json={"record": {**EXAMPLE_RECORD, "workclass": "Pirate"}}
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert (problem["code"], problem["field"]) == ("invalid_record", "workclass")
    assert rows_with(problem["request_id"]) == 1  # the worker recorded the error


@pytest.mark.parametrize(
    ("send", "status", "code"),
    [
        (
            dict(json={"record": EXAMPLE_RECORD}, url="/v1/endpoints/nope/predictions"),
            404,
            "unknown_endpoint",
        ),
        (dict(content=b"{", headers={"content-type": "application/json"}), 400, "invalid_json"),
        (
            dict(content=b"age=3", headers={"content-type": "text/plain"}),
            415,
            "unsupported_media_type",
        ),
        (dict(json={"record": [1, 2]}), 422, "invalid_record"),
        (dict(json={"age": 37}), 422, "invalid_request"),
        (dict(json={"record": {"x": "y" * 70_000}}), 413, "record_too_large"),
        (dict(json={"record": {"x": "y" * 1_100_000}}), 413, "body_too_large"),
        (dict(json={"record": EXAMPLE_RECORD, "request_id": "x" * 200}), 422, "invalid_request"),
    ],
)
def test_what_the_api_refuses_before_sending(
    http: httpx.Client, send: dict[str, Any], status: int, code: str
) -> None:
    url = send.pop("url", PREDICT)
    answer = http.post(url, **send)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code and answer.json()["detail"]


def test_unknown_ids_and_paths_are_404(http: httpx.Client) -> None:
    assert http.get(f"/v1/predictions/{uuid.uuid4()}").json()["code"] == "unknown_request"
    assert http.get("/v1/batches/nope").status_code == 404
    assert http.get("/v1/ab-tests/999").status_code == 404
    assert http.get("/v2/anything").json()["code"] == "not_found"


def test_no_key_is_401_a_key_outside_its_scope_403(
    api_server: Any, api_keys: dict[str, str], clean_db: str
) -> None:
    with httpx.Client(base_url=api_server.url, timeout=30) as anonymous:
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get("/metrics").status_code == 200
        refused = anonymous.post(PREDICT, json={"record": EXAMPLE_RECORD})
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        wrong = anonymous.get("/v1/models", headers={"Authorization": "Bearer mlq_nope"})
        assert wrong.status_code == 401
        as_feedback = {"Authorization": f"Bearer {api_keys['feedback']}"}
        forbidden = anonymous.post(PREDICT, json={"record": EXAMPLE_RECORD}, headers=as_feedback)
        assert forbidden.status_code == 403 and "predict" in forbidden.json()["detail"]
        as_predict = {"Authorization": f"Bearer {api_keys['predict']}"}
        assert anonymous.get("/v1/models", headers=as_predict).status_code == 403
        assert (
            anonymous.post(PREDICT, json={"record": EXAMPLE_RECORD}, headers=as_predict).status_code
            == 202
        )


def test_a_revoked_key_stops_working(api_server: Any, clean_db: str) -> None:
    import time

    from tests.integration.conftest import run_mlq

    created = run_mlq("keys", "create", "--scopes", "predict", "--name", "gone", "--json")
    assert created.returncode == 0, created.stderr
    import json

    key = json.loads(created.stdout)
    with httpx.Client(base_url=api_server.url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {key['secret']}"}
        assert client.get(f"/v1/predictions/{uuid.uuid4()}", headers=headers).status_code == 404
        assert run_mlq("keys", "revoke", str(key["id"])).returncode == 0
        listed = json.loads(run_mlq("keys", "list", "--json").stdout)
        assert "secret" not in str(listed) and key["secret"] not in str(listed)
        time.sleep(5.5)  # the API trusts a key it saw for 5 s
        assert client.get(f"/v1/predictions/{uuid.uuid4()}", headers=headers).status_code == 401


def test_a_retried_post_with_an_idempotency_key_predicts_once(http: httpx.Client) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"record": EXAMPLE_RECORD}
    first = http.post(PREDICT, json=body, headers=key)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        retries = list(
            pool.map(
                lambda _: http.post(PREDICT, params={"wait": 30}, json=body, headers=key), range(4)
            )
        )
    request_id = first.json()["request_id"]
    assert {r.json()["request_id"] for r in retries} == {request_id}
    assert {r.status_code for r in retries} == {200}
    assert rows_with(request_id) == 1
    with session_scope() as session:
        assert session.execute(select(func.count()).select_from(MLRequest)).scalar_one() == 1
    other = http.post(PREDICT, json={"record": {**EXAMPLE_RECORD, "age": 50}}, headers=key)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


def test_a_client_chosen_request_id_is_sent_once(http: httpx.Client) -> None:
    body = {"record": EXAMPLE_RECORD, "request_id": f"order-{uuid.uuid4()}"}
    answers = [http.post(PREDICT, params={"wait": 30}, json=body) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert rows_with(body["request_id"]) == 1
    with session_scope() as session:
        assert session.execute(select(func.count()).select_from(MLRequest)).scalar_one() == 1


def test_a_batch_upload_is_checked_scored_and_read_back_in_order(http: httpx.Client) -> None:
    columns = list(EXAMPLE_RECORD)
    lines = ["row," + ",".join(columns) + ",income"]
    for i in range(300):
        lines.append(
            f"r{i},"
            + ",".join(str({**EXAMPLE_RECORD, "age": 20 + i % 50}[c]) for c in columns)
            + ",<=50K"
        )
    body = "\n".join(lines).encode()
    url = "/v1/endpoints/income_classifier/batches"
    refused = http.post(url, content=body, headers={"content-type": "text/csv"})
    assert refused.status_code == 422 and "extra 'row', 'income'" in refused.json()["detail"]
    accepted = http.post(
        url,
        params={"id_column": "row", "ignore_columns": "income", "chunk_size": 64},
        content=iter([body[:1000], body[1000:]]),
        headers={"content-type": "text/csv"},
    )
    assert accepted.status_code == 202, accepted.text
    batch = accepted.json()
    assert batch["total"] == 300
    status = batch
    for _ in range(120):
        status = http.get(accepted.headers["location"]).json()
        if status["state"] == "done":
            break
        import time

        time.sleep(0.25)
    assert (status["state"], status["ok"]) == ("done", 300)
    csv_lines = http.get(f"/v1/batches/{batch['batch_id']}/results").text.splitlines()
    assert csv_lines[0].startswith("position,external_id,request_id,status")
    assert [line.split(",")[1] for line in csv_lines[1:]] == [f"r{i}" for i in range(300)]
    jsonl = http.get(f"/v1/batches/{batch['batch_id']}/results", params={"format": "jsonl"})
    assert jsonl.headers["content-type"] == "application/x-ndjson"
    assert len(jsonl.text.splitlines()) == 300


def test_feedback_one_and_many(http: httpx.Client) -> None:
    request_id = http.post(PREDICT, params={"wait": 30}, json={"record": EXAMPLE_RECORD}).json()[
        "request_id"
    ]
    one = http.post("/v1/feedback", json={"request_id": request_id, "label": ">50K"})
    assert one.status_code == 200 and one.json()["recorded"] == 1
    many = http.post(
        "/v1/feedback",
        json={
            "items": [
                {"request_id": request_id, "label": "<=50K"},
                {"request_id": "never", "label": "<=50K"},
            ]
        },
    )
    assert many.json()["unknown"] == ["never"] and len(many.json()["replaced"]) == 1
    with session_scope() as session:
        assert session.get(Feedback, request_id).label == "<=50K"


def test_models_are_listed_promoted_and_rolled_back(http: httpx.Client) -> None:
    listed = http.get("/v1/models", params={"endpoint": "income_classifier"}).json()
    assert {m["name"] for m in listed} >= {"random forest", "extra trees"}
    promoted = http.post(
        "/v1/endpoints/income_classifier/models/extra trees/0.0.1/promote", json={"reason": "test"}
    )
    assert promoted.status_code == 200 and promoted.json()["status"] == "production"
    back = http.post("/v1/endpoints/income_classifier/rollback")
    assert back.status_code == 200 and back.json()["name"] == "random forest"
    refused = http.post("/v1/endpoints/income_classifier/models/random forest/0.0.1/retire")
    assert refused.status_code == 422 and "production" in refused.json()["detail"]


def test_a_client_that_disconnects_or_dawdles_takes_nothing_down(
    api_server: Any, http: httpx.Client
) -> None:
    import socket
    import time

    host, port = "127.0.0.1", int(api_server.url.rsplit(":", 1)[1])
    slow = socket.create_connection((host, port))
    slow.sendall(
        b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
    )
    gone = socket.create_connection((host, port))
    gone.sendall(
        b"POST /v1/endpoints/income_classifier/batches HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: text/csv\r\nContent-Length: 100000000\r\n\r\nage,workclass\r\n37,"
    )
    gone.close()
    time.sleep(0.5)
    answer = http.post(PREDICT, params={"wait": 30}, json={"record": EXAMPLE_RECORD})
    assert answer.status_code == 200
    slow.close()
    assert http.get("/health").status_code == 200
