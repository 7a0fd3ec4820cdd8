"""A corpus of malformed records and requests against the real stack: Redis, a worker
process, PostgreSQL, the Python client, raw messages and the `mlq` command line.

For every case: a clear error naming the field or the problem; in PostgreSQL exactly
one error row, with its message, per record that reached a worker, and none for what
was refused before sending; and afterwards a worker still alive, no pool process lost,
still serving (the ``serving`` fixture checks this after each case).

Cases covered elsewhere are not repeated, nor counted, here:
tests/integration/test_bad_input.py: a missing field, "abc" for a number, a null number,
an unknown category, an unknown field, a negative age, an array and a number as the
record, an unknown endpoint or version, an ambiguous selection, NaN and ±Infinity sent
by the Python client (its JSON serializer writes the NaN literal, which Python decodes).
tests/integration/test_batches.py: a wrong type, an array and an unknown category in a
batch, integers beyond 64 bits and NUL in values and field names, a JSON Lines line that
is not JSON, an empty CSV, a header-only CSV and a file of unknown format.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from celery.result import AsyncResult
from sqlalchemy import func, select

from producer import Client
from producer.batches import BatchSubmitError
from producer.local_processes import LocalWorker
from shared.celery_app import app
from shared.contracts import (
    EXAMPLE_RECORD,
    TASK_PREDICT,
    TASK_PREDICT_BATCH,
    TASK_QUEUES,
    batch_request_id,
)
from shared.db.engine import session_scope
from shared.db.models import Batch, MLRequest
from shared.errors import (
    BatchTooLargeError,
    InvalidRecordError,
    InvalidRequestError,
    MlqError,
    RecordTooLargeError,
)
from shared.settings import get_settings
from tests.conftest import TEST_HOME
from tests.integration.conftest import run_mlq

pytestmark = pytest.mark.integration

GOOD = EXAMPLE_RECORD
ENDPOINT = "income_classifier"
# Bigger than the default MLQ_MAX_RECORD_BYTES (65536), which the worker runs with.
OVERSIZE = {**GOOD, "native-country": "x" * 70_000}


def with_(**changes: object) -> dict[str, object]:
    return {**GOOD, **{k.replace("_", "-"): v for k, v in changes.items()}}


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


# -- checks shared by every case -------------------------------------------------------


@pytest.fixture
def serving(client: Client, worker: Any) -> Iterator[Client]:
    """The client; after the case, the worker is alive, lost no pool process and serves."""
    log = TEST_HOME / "worker.log"
    offset = log.stat().st_size
    yield client
    assert worker.process.poll() is None, "the worker exited"
    since = log.read_bytes()[offset:].decode(errors="replace")
    assert "WorkerLostError" not in since and "exited with 'signal" not in since, since
    assert client.result(client.predict(GOOD), timeout=30)["status"] == "OK"


@pytest.fixture
def limits(serving: Client, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Lower MLQ_MAX_* in this process (the producer) for one case; the worker keeps its own."""

    def set_limits(**variables: int) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, str(value))
        get_settings.cache_clear()

    yield set_limits
    monkeypatch.undo()
    get_settings.cache_clear()


def all_rows() -> list[MLRequest]:
    with session_scope() as session:
        query = select(MLRequest).order_by(MLRequest.batch_position, MLRequest.id)
        return list(session.execute(query).scalars())


def batches() -> int:
    with session_scope() as session:
        return session.execute(select(func.count()).select_from(Batch)).scalar_one()


def assert_error_row(row: MLRequest, code: str, field: str | None, text: str) -> None:
    assert (row.status, row.error_code) == ("ERROR", code), row.response
    assert row.error_message and text in row.error_message, row.error_message
    assert row.response["error"]["field"] == field
    assert row.label is None and row.response["status"] == "ERROR"


# -- records that reach a worker through the Python client ------------------------------


RECORDS: list[tuple[str, Any, str | None, str]] = [
    ("a number as a numeric string", with_(age="37"), "age", "expected a number, got a string"),
    ("a boolean for a number", with_(capital_gain=True), "capital-gain", "got a boolean"),
    ("an array for a number", with_(age=[37]), "age", "expected a number, got an array [37]"),
    ("an object for a number", with_(fnlwgt={"value": 1}), "fnlwgt", "got an object"),
    ("a number for a category", with_(workclass=3), "workclass", "expected a string, got a number"),
    ("an object for a category", with_(race={"name": "White"}), "race", "got an object"),
    ("null for a category", with_(occupation=None), "occupation", "is null; a string is required"),
    ("NaN for a category", with_(race=math.nan), "race", "expected a string, got a number nan"),
    ("an age above 130", with_(age=130.5), "age", "130.5 is out of range [0, 130]"),
    ("fnlwgt above 1e8", with_(fnlwgt=1e9), "fnlwgt", "out of range [0, 1e+08]"),
    ("education-num of 0", with_(education_num=0), "education-num", "0 is out of range [1, 16]"),
    ("negative hours", with_(hours_per_week=-0.5), "hours-per-week", "-0.5 is out of range"),
    ("a number beyond 64 bits", with_(capital_gain=10**30), "capital-gain", "out of range"),
    ("an empty category", with_(sex=""), "sex", "unknown category ''"),
    ("a category in the wrong case", with_(sex="male"), "sex", "unknown category 'male'"),
    ("a 60,000-character string", with_(native_country="x" * 60_000), "native-country", "'xxx"),
    ("every field missing", {}, "age", "missing (also: workclass"),
    ("three unknown fields", {**GOOD, "zip": 1, "city": 2, "mail": 3}, "city", "(also: mail, zip)"),
    ("an empty field name", {**GOOD, "": 1}, "", "field '': unknown field"),
    ("a 10,000-character field name", {**GOOD, "k" * 10_000: 1}, "k" * 10_000, "unknown field"),
    ("a list nested 200 deep", with_(age=nested(200)), "age", "got an array [[[["),
    ("a lone surrogate in a category", with_(sex="\ud800"), "sex", "unknown category"),
    ("a lone surrogate in a field name", {**GOOD, "\udc00": 1}, "\ufffd", "unknown field"),
    ("a string as the record", "hello", None, "must be a JSON object, got a string"),
    ("null as the record", None, None, "must be a JSON object, got null"),
    ("true as the record", True, None, "must be a JSON object, got a boolean"),
]


@pytest.mark.parametrize(
    ("record", "field", "text"), [c[1:] for c in RECORDS], ids=[c[0] for c in RECORDS]
)
def test_a_malformed_record_gets_one_error_row(
    serving: Client, record: Any, field: str | None, text: str
) -> None:
    request_id = serving.predict(record)
    result = serving.result(request_id, timeout=30)
    assert (result["status"], result["error"]["code"]) == ("ERROR", "invalid_record")
    (row,) = all_rows()
    assert row.id == request_id
    # The stored field is the one named, made storable (a lone surrogate becomes U+FFFD).
    assert_error_row(row, "invalid_record", field, text)
    assert len(row.error_message) < 1000, "a message stays short whatever the record holds"


# -- refused by the Python client before anything is sent -------------------------------


@dataclass(frozen=True)
class Refused:
    name: str
    send: Callable[[Client], object]
    error: type[MlqError]
    text: str
    env: tuple[tuple[str, int], ...] = ()


REFUSED = [
    Refused(
        "a record over MLQ_MAX_RECORD_BYTES",
        lambda c: c.predict(OVERSIZE),
        RecordTooLargeError,
        "the record is 70,280 bytes as JSON, more than MLQ_MAX_RECORD_BYTES=65536 allows",
    ),
    Refused(
        "a request id of 129 characters",
        lambda c: c.predict(GOOD, request_id="r" * 129),
        InvalidRequestError,
        "request_id is 129 characters long, more than the 128 a row can hold",
    ),
    Refused(
        "an empty request id",
        lambda c: c.predict(GOOD, request_id=""),
        InvalidRequestError,
        "request_id must not be empty",
    ),
    Refused(
        "a number as the request id",
        lambda c: c.predict(GOOD, request_id=42),
        InvalidRequestError,
        "request_id must be a string, got a number",
    ),
    Refused(
        "a NUL in the request id",
        lambda c: c.predict(GOOD, request_id="a\x00b"),
        InvalidRequestError,
        "request_id holds a NUL character",
    ),
    Refused(
        "an endpoint of 129 characters",
        lambda c: c.predict(GOOD, endpoint="e" * 129),
        InvalidRequestError,
        "endpoint is 129 characters long",
    ),
    Refused(
        "a record nested 600 deep (sent, it would take a worker down)",
        lambda c: c.predict(with_(age=nested(600))),
        InvalidRecordError,
        "the record is nested more than 254 levels deep",
    ),
    Refused(
        "a set in the record",
        lambda c: c.predict(with_(race={"White"})),
        InvalidRecordError,
        "the record cannot be sent as JSON: Object of type set",
    ),
    Refused(
        "a batch id of 65 characters",
        lambda c: c.submit_batch([GOOD], batch_id="b" * 65),
        InvalidRequestError,
        "batch_id is 65 characters long, more than the 64",
    ),
    Refused(
        "a list of records over MLQ_MAX_BATCH_RECORDS",
        lambda c: c.submit_batch([GOOD] * 6),
        BatchTooLargeError,
        "the batch holds 6 records, more than MLQ_MAX_BATCH_RECORDS=5 allows",
        (("MLQ_MAX_BATCH_RECORDS", 5),),
    ),
    Refused(
        "a first chunk holding a record over MLQ_MAX_RECORD_BYTES",
        lambda c: c.submit_batch([GOOD, with_(native_country="x" * 2000)]),
        RecordTooLargeError,
        "record 1 is 2,280 bytes as JSON, more than MLQ_MAX_RECORD_BYTES=1000 allows",
        (("MLQ_MAX_RECORD_BYTES", 1000),),
    ),
    Refused(
        "a first chunk past MLQ_MAX_BATCH_RECORDS",
        lambda c: c.submit_batch((GOOD for _ in range(9)), chunk_size=4),
        BatchTooLargeError,
        "at least 4 records, more than MLQ_MAX_BATCH_RECORDS=3",
        (("MLQ_MAX_BATCH_RECORDS", 3),),
    ),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c.name for c in REFUSED])
def test_refused_before_sending_leaves_no_row(
    serving: Client, limits: Callable[..., None], case: Refused
) -> None:
    limits(**dict(case.env))
    with pytest.raises(case.error) as caught:
        case.send(serving)
    assert case.text in str(caught.value)
    time.sleep(0.3)  # anything sent by mistake would have reached the worker by now
    assert all_rows() == [] and batches() == 0


# -- raw messages, as a producer in another language may send them ----------------------


def publish_raw(task: str, body: str | bytes, queue: str | None = None) -> str:
    """Send a message body as is (JSON text, or bytes claimed to be UTF-8 JSON)."""
    task_id = str(uuid.uuid4())
    message = app.amqp.as_task_v2(task_id, task, args=(), kwargs={})
    queue = queue or TASK_QUEUES[task]
    with app.producer_or_acquire() as producer:
        producer.publish(
            body,
            exchange=queue,
            routing_key=queue,
            headers=message.headers,
            content_type="application/json",
            content_encoding="utf-8",
            **message.properties,
        )
    return task_id


def body(**kwargs: Any) -> str:
    """A protocol 2 body: [args, kwargs, embed]. json.dumps writes NaN and \\udXXX escapes."""
    return json.dumps([[], kwargs, {}])


def answered(task_id: str, timeout: float = 30) -> AsyncResult:
    result = AsyncResult(task_id, app=app)
    deadline = time.monotonic() + timeout
    while result.state not in ("SUCCESS", "FAILURE"):
        assert time.monotonic() < deadline, f"no answer for {task_id}"
        time.sleep(0.05)
    return result


@dataclass(frozen=True)
class Raw:
    name: str
    body: str | bytes
    # "row": an error row (code, field, text) keyed by request_id (default: the task id);
    # "answered": an error result, logged, and no row; "failed": the task fails.
    outcome: str
    code: str = "invalid_record"
    field: str | None = None
    text: str = ""
    request_id: str | None = None


RAW = [
    Raw(
        "NaN and -Infinity literals",
        body(record=with_(fnlwgt=math.nan, hours_per_week=-math.inf), endpoint=ENDPOINT),
        "row",
        field="fnlwgt",
        text="nan is not a finite number",
    ),
    Raw(
        "a lone surrogate escape",
        body(record=with_(relationship="Husband\udfff"), endpoint=ENDPOINT),
        "row",
        field="relationship",
        text="unknown category",
    ),
    Raw(
        "a record over MLQ_MAX_RECORD_BYTES",
        body(record=OVERSIZE, endpoint=ENDPOINT),
        "row",
        code="record_too_large",
        text="more than MLQ_MAX_RECORD_BYTES=65536 allows",
    ),
    Raw(
        "a record nested 380 deep (within the wire's bound)",
        '[[], {"record": ' + "[" * 380 + "]" * 380 + f', "endpoint": "{ENDPOINT}"}}, {{}}]',
        "row",
        text="the record is nested more than 254 levels deep",
    ),
    Raw(
        "a record nested 300 deep",
        '[[], {"record": ' + "[" * 300 + "]" * 300 + f', "endpoint": "{ENDPOINT}"}}, {{}}]',
        "row",
        text="the record is nested more than 254 levels deep",
    ),
    Raw(
        "an empty request id (the task id keys the row)",
        body(record=with_(age=-1), endpoint=ENDPOINT, request_id=""),
        "row",
        field="age",
        text="out of range",
    ),
    Raw(
        "a request id of 200 characters",
        body(record=GOOD, endpoint=ENDPOINT, request_id="r" * 200),
        "answered",
        code="invalid_request",
        field="request_id",
        text="request_id is 200 characters long, more than the 128 a row can hold; no row",
    ),
    Raw(
        "a number as the request id",
        body(record=GOOD, endpoint=ENDPOINT, request_id=42),
        "answered",
        code="invalid_request",
        field="request_id",
        text="request_id must be a string, got a number; no row can be keyed by it",
    ),
    Raw(
        "an endpoint of 300 characters",
        body(record=GOOD, endpoint="e" * 300),
        "answered",
        code="invalid_request",
        field="endpoint",
        text="endpoint is 300 characters long",
    ),
    Raw(
        "a number as the endpoint",
        body(record=GOOD, endpoint=7),
        "answered",
        code="invalid_request",
        field="endpoint",
        text="endpoint must be a string, got a number",
    ),
    Raw("no record argument", body(endpoint=ENDPOINT), "failed", text="argument: 'record'"),
    Raw(
        "an unknown argument",
        body(record=GOOD, endpoint=ENDPOINT, records=[GOOD]),
        "failed",
        text="unexpected keyword argument 'records'",
    ),
]


@pytest.mark.parametrize("case", RAW, ids=[c.name for c in RAW])
def test_a_raw_message_gets_a_clear_answer(serving: Client, case: Raw) -> None:
    task_id = publish_raw(TASK_PREDICT, case.body)
    result = answered(task_id)
    rows = all_rows()
    if case.outcome == "failed":
        assert result.state == "FAILURE" and case.text in str(result.result)
        assert rows == []
        return
    assert result.state == "SUCCESS"
    assert (result.result["status"], result.result["error"]["code"]) == ("ERROR", case.code)
    assert case.text in result.result["error"]["message"]
    if case.outcome == "answered":
        assert result.result["error"]["field"] == case.field
        assert rows == []
        log = (TEST_HOME / "worker.log").read_text(errors="replace")
        assert f"refused: {case.text}" in log
        return
    (row,) = rows
    assert row.id == task_id
    assert_error_row(row, case.code, case.field, case.text)
    if case.code == "record_too_large":
        assert row.input.startswith("<not stored: the record is 70,"), "the limit keeps it out"


UNDECODABLE: list[tuple[str, str | bytes]] = [
    ("a body that is not JSON", "{this is not json"),
    (
        # Within Python's own limit: only shared/wire.py's bound keeps it from the pool.
        "a body nested 500 deep",
        '[[], {"record": ' + "[" * 500 + "]" * 500 + f', "endpoint": "{ENDPOINT}"}}, {{}}]',
    ),
    (
        "a body nested 1000 deep",
        '[[], {"record": ' + "[" * 1000 + "]" * 1000 + f', "endpoint": "{ENDPOINT}"}}, {{}}]',
    ),
    ("a body that is not UTF-8", b'[[], {"record": {"sex": "\xff\xfe"}, "endpoint": "x"}, {}]'),
]


@pytest.mark.parametrize("raw", [b for _, b in UNDECODABLE], ids=[n for n, _ in UNDECODABLE])
def test_an_undecodable_message_is_logged_and_dropped(serving: Client, raw: str | bytes) -> None:
    """Celery cannot decode such a message, so no task runs and neither a row nor a result
    can say what happened: it logs the message and acknowledges it, never to come back."""
    log = TEST_HOME / "worker.log"
    offset = log.stat().st_size
    publish_raw(TASK_PREDICT, raw)
    deadline = time.monotonic() + 30
    while "Can't decode message body" not in log.read_bytes()[offset:].decode(errors="replace"):
        assert time.monotonic() < deadline, "the worker did not report the message"
        time.sleep(0.1)
    assert all_rows() == []


def test_a_raw_record_nested_900_deep_does_not_take_a_worker_down(
    clean_db: str, tmp_path: Path
) -> None:
    """On a worker of its own, consuming only its private queue: it may go down."""
    own = LocalWorker(log_path=tmp_path / "deep.log", queues=(), name="deep")
    own.start()
    try:
        deep = "[" * 900 + "]" * 900
        body_ = f'[[], {{"record": {deep}, "endpoint": "{ENDPOINT}"}}, {{}}]'
        result = AsyncResult(publish_raw(TASK_PREDICT, body_, queue=own.private_queue), app=app)
        deadline = time.monotonic() + 30
        while result.state == "PENDING" and "Can't decode" not in own.log_tail(200):
            assert own.process is not None and own.process.poll() is None, own.log_tail()
            assert time.monotonic() < deadline, "no answer and nothing logged"
            time.sleep(0.1)
        time.sleep(1)
        assert own.process is not None and own.process.poll() is None, own.log_tail()
    finally:
        own.stop()


# -- raw batch chunks ---------------------------------------------------------------------


CHUNKS: list[tuple[str, dict[str, Any], str]] = [
    ("a batch id of 100 characters", {"batch_id": "b" * 100}, "batch_id is 100 characters long"),
    ("records that are an object", {"records": {"0": GOOD}}, "records must be an array"),
    ("a negative start", {"start": -1}, "start must be a whole number from 0"),
    ("a start beyond 32 bits", {"start": 2**31}, "start must be a whole number from 0"),
    ("a text start", {"start": "0"}, "start must be a whole number from 0"),
]


@pytest.mark.parametrize(("changes", "text"), [c[1:] for c in CHUNKS], ids=[c[0] for c in CHUNKS])
def test_a_chunk_no_row_can_hold_fails_clearly(
    serving: Client, changes: dict[str, Any], text: str
) -> None:
    kwargs = {"batch_id": "raw", "endpoint": ENDPOINT, "start": 0, "records": [GOOD], **changes}
    result = answered(publish_raw(TASK_PREDICT_BATCH, body(**kwargs)))
    assert result.state == "FAILURE" and text in str(result.result), result.result
    assert all_rows() == []


def test_a_chunk_keeps_its_good_records_beside_oversize_and_surrogate_ones(
    serving: Client,
) -> None:
    records = [GOOD, OVERSIZE, GOOD, with_(race="\ud800"), GOOD]
    kwargs = {"batch_id": "mixed", "endpoint": ENDPOINT, "start": 10, "records": records}
    result = answered(publish_raw(TASK_PREDICT_BATCH, body(**kwargs)))
    assert result.state == "SUCCESS", result.result
    assert (result.result["ok"], result.result["errors"], result.result["written"]) == (3, 2, 5)
    rows = all_rows()
    assert [r.id for r in rows] == [batch_request_id("mixed", p) for p in range(10, 15)]
    assert [r.status for r in rows] == ["OK", "ERROR", "OK", "ERROR", "OK"]
    assert_error_row(rows[1], "record_too_large", None, "MLQ_MAX_RECORD_BYTES=65536")
    assert rows[1].input.startswith("<not stored:")
    assert_error_row(rows[3], "invalid_record", "race", "unknown category '\\ud800'")
    assert rows[3].input["race"] == "\ufffd"


# -- batches through the Python client ------------------------------------------------


def test_records_that_are_not_objects_each_get_a_row_in_a_batch(serving: Client) -> None:
    records: list[Any] = [None, "text", 3, True, nested(50), GOOD]
    submission = serving.submit_batch(records, chunk_size=4)
    assert serving.result(submission.request_ids[5], timeout=30)["status"] == "OK"
    rows = wait_rows(6)
    kinds = ["null", "a string", "a number", "a boolean", "an array"]
    for row, kind in zip(rows[:5], kinds, strict=True):
        assert_error_row(row, "invalid_record", None, f"must be a JSON object, got {kind}")
    assert rows[5].status == "OK"


def test_a_dataframe_with_missing_values_names_them(serving: Client) -> None:
    frame = pd.DataFrame([GOOD] * 3)
    frame.loc[1, "age"] = math.nan
    frame.loc[2, "workclass"] = None
    submission = serving.submit_batch(frame)
    serving.result(submission.request_ids[2], timeout=30)
    rows = wait_rows(3)
    assert rows[0].status == "OK"
    assert_error_row(rows[1], "invalid_record", "age", "is null; a number is required")
    assert_error_row(rows[2], "invalid_record", "workclass", "is null; a string is required")


def wait_rows(count: int, timeout: float = 30) -> list[MLRequest]:
    deadline = time.monotonic() + timeout
    while len(rows := all_rows()) < count:
        assert time.monotonic() < deadline, f"{len(rows)} rows of {count}"
        time.sleep(0.1)
    time.sleep(0.3)  # and no more come
    rows = all_rows()
    assert len(rows) == count
    return rows


@pytest.mark.parametrize(
    ("records", "env", "text"),
    [
        (
            lambda: [GOOD] * 4 + [with_(native_country="x" * 2000), GOOD],
            {"MLQ_MAX_RECORD_BYTES": 1000},
            "record 4 is 2,",
        ),
        (lambda: (GOOD for _ in range(9)), {"MLQ_MAX_BATCH_RECORDS": 5}, "MLQ_MAX_BATCH_RECORDS=5"),
    ],
    ids=["an oversize record in a later chunk", "a stream past MLQ_MAX_BATCH_RECORDS"],
)
def test_a_later_chunk_over_a_limit_stops_the_batch_and_says_how_far_it_went(
    serving: Client,
    limits: Callable[..., None],
    records: Callable[[], Any],
    env: dict[str, int],
    text: str,
) -> None:
    limits(**env)
    with pytest.raises(BatchSubmitError) as caught:
        serving.submit_batch(records(), chunk_size=2, batch_id="stopped")
    message = str(caught.value)
    assert text in message and "sending stopped after 4 records" in message
    assert "positions 4 on were not sent" in message and "batch id stopped" in message
    assert isinstance(caught.value.__cause__, RecordTooLargeError | BatchTooLargeError)
    rows = wait_rows(4)
    assert [r.batch_position for r in rows] == [0, 1, 2, 3]
    assert all(r.status == "OK" for r in rows)
    assert serving.batch_status("stopped")["state"] == "submitting"


@pytest.mark.parametrize(
    ("first", "second"),
    [(GOOD, with_(age=-1)), (with_(age=-1), GOOD)],
    ids=["good first", "bad first"],
)
def test_a_duplicate_request_id_neither_adds_nor_overwrites_a_row(
    serving: Client, first: dict[str, Any], second: dict[str, Any]
) -> None:
    """The second message (here with a task id of its own, so that its answer can be
    awaited) is answered with the first one's stored result."""
    request_id = f"dup-{uuid.uuid4()}"
    before = serving.result(serving.predict(first, request_id=request_id), timeout=30)
    kwargs = {"record": second, "endpoint": ENDPOINT, "request_id": request_id}
    assert app.send_task(TASK_PREDICT, kwargs=kwargs).get(timeout=30) == before
    assert serving.result(request_id) == before
    (row,) = all_rows()
    assert (row.id, row.input, row.response) == (request_id, first, before)


# -- files through `mlq batch submit` and records through `mlq predict` ------------------


HEADER = ",".join(GOOD)
LINE = ",".join(str(v) for v in GOOD.values())
OK = ("OK", None, "")


def csv_bytes(*lines: str | bytes) -> bytes:
    encoded = [line.encode() if isinstance(line, str) else line for line in (HEADER, *lines)]
    return b"\n".join(encoded) + b"\n"


def jsonl(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


GOOD_JSON = json.dumps(GOOD)
FILES: list[tuple[str, str, bytes, list[tuple[str, str | None, str]]]] = [
    (
        "CSV with bytes that are not UTF-8",
        "latin1.csv",
        csv_bytes(LINE, LINE.replace("United-States", "M\xe9xico").encode("latin-1")),
        [OK, ("ERROR", "native-country", "unknown category 'M\ufffdxico'")],
    ),
    (
        "CSV with nan, inf and units in number cells",
        "cells.csv",
        csv_bytes(
            LINE.replace("37", "nan", 1), LINE.replace(",68,", ",inf,"), "37 years" + LINE[2:]
        ),
        [
            ("ERROR", "age", "expected a number, got a string 'nan'"),
            ("ERROR", "hours-per-week", "got a string 'inf'"),
            ("ERROR", "age", "got a string '37 years'"),
        ],
    ),
    (
        "JSON Lines of arrays, strings and numbers",
        "kinds.jsonl",
        jsonl("[1, 2]", '"text"', "3.5", GOOD_JSON),
        [
            ("ERROR", None, "must be a JSON object, got an array"),
            ("ERROR", None, "must be a JSON object, got a string"),
            ("ERROR", None, "must be a JSON object, got a number"),
            OK,
        ],
    ),
    (
        "JSON Lines with blank lines and a broken last line",
        "blank.jsonl",
        jsonl("", GOOD_JSON, "   ", "", GOOD_JSON)[:-1] + b'\n{"age": 3',
        [OK, OK, ("ERROR", None, "must be a JSON object, got a string")],
    ),
    (
        "JSON Lines with NaN and Infinity literals",
        "nan.jsonl",
        jsonl(GOOD_JSON.replace('"age": 37', '"age": NaN'), GOOD_JSON.replace("68", "Infinity")),
        [
            ("ERROR", "age", "nan is not a finite number"),
            ("ERROR", "hours-per-week", "inf is not a finite number"),
        ],
    ),
    (
        "JSON Lines with a line nested 1000 deep",
        "deep.jsonl",
        jsonl("[" * 1000 + "]" * 1000, GOOD_JSON),
        [("ERROR", None, "must be a JSON object, got a string"), OK],
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "expected"), [c[1:] for c in FILES], ids=[c[0] for c in FILES]
)
def test_a_malformed_file_gets_an_error_row_per_bad_record(
    serving: Client, tmp_path: Path, name: str, content: bytes, expected: list[Any]
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    done = run_mlq(
        "batch", "submit", str(path), "--chunk-size", "2", "--wait", "--timeout", "60s", "--json"
    )
    assert "Traceback" not in done.stderr, done.stderr
    failed = sum(status == "ERROR" for status, _, _ in expected)
    assert done.returncode == (1 if failed else 0), done.stderr
    final = json.loads(done.stdout)
    batch_id = final["batch_id"]
    assert final["failed"] == failed
    rows = all_rows()
    assert [r.id for r in rows] == [batch_request_id(batch_id, p) for p in range(len(expected))]
    for row, (status, field, text) in zip(rows, expected, strict=True):
        if status == "OK":
            assert row.status == "OK", row.response
        else:
            assert_error_row(row, "invalid_record", field, text)


def one_clear_line(done: Any, text: str) -> None:
    """The CLI's error: a non-zero exit, one line on stderr, no traceback."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    assert lines[-1].startswith("Error: ") and text in lines[-1], done.stderr


REFUSED_FILES: list[tuple[str, str, bytes, dict[str, str], str]] = [
    ("an empty JSON Lines file", "empty.jsonl", b"", {}, "holds no records"),
    (
        # The trial's file: the quote swallowed the 6 lines after it (8 records became 3).
        "CSV with a quote never closed",
        "quote.csv",
        csv_bytes(LINE, LINE, LINE.replace(",Private,", ',"Private,', 1), *[LINE] * 5),
        {},
        "quote.csv, line 4: a quoted field is not closed before the end of the file "
        "(the row runs from line 4 to 9: is a quote not closed?)",
    ),
    (
        "CSV with a row shorter than the header",
        "ragged.csv",
        csv_bytes(LINE, LINE.rsplit(",", 1)[0], LINE),
        {},
        "ragged.csv, line 3: 13 fields, the header has 14",
    ),
    (
        "CSV with a row longer than the header, on line 5,001",
        "long.csv",
        csv_bytes(*[LINE] * 4999, LINE + ",surplus"),
        {},
        "long.csv, line 5001: 15 fields, the header has 14",
    ),
    ("a JSON Lines file of blank lines", "blank.jsonl", b"\n  \n\n", {}, "holds no records"),
    (
        "a file over MLQ_MAX_BATCH_RECORDS",
        "many.csv",
        csv_bytes(*[LINE] * 6),
        {"MLQ_MAX_BATCH_RECORDS": "5"},
        "the batch holds 6 records, more than MLQ_MAX_BATCH_RECORDS=5 allows",  # counted exactly
    ),
    (
        "MLQ_MAX_BATCH_RECORDS that is not a number",
        "one.csv",
        csv_bytes(LINE),
        {"MLQ_MAX_BATCH_RECORDS": "many"},
        "MLQ_MAX_BATCH_RECORDS='many' must be a whole number",
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "env", "text"),
    [c[1:] for c in REFUSED_FILES],
    ids=[c[0] for c in REFUSED_FILES],
)
def test_a_file_refused_before_a_batch_exists(
    serving: Client, tmp_path: Path, name: str, content: bytes, env: dict[str, str], text: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    done = run_mlq("batch", "submit", str(path), env=env)
    one_clear_line(done, text)
    assert done.stdout == ""  # no batch id was printed
    assert batches() == 0 and all_rows() == []


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (
            ["--endpoint", "income_clasifier"],
            "unknown endpoint 'income_clasifier' (registered: 'income_classifier')",
        ),
        (["--id-column", "row"], "records.csv's header has no column 'row' (it has 'age', "),
        (["--ignore-columns", "income, notes"], "has no column 'income', 'notes'"),
    ],
    ids=["a typo in --endpoint", "an --id-column not in the file", "--ignore-columns not in it"],
)
def test_options_that_do_not_fit_the_file_are_refused_before_a_batch_exists(
    serving: Client, tmp_path: Path, args: list[str], text: str
) -> None:
    path = tmp_path / "records.csv"
    path.write_bytes(csv_bytes(*[LINE] * 3))
    done = run_mlq("batch", "submit", str(path), *args)
    one_clear_line(done, text)
    assert done.stdout == ""
    assert batches() == 0 and all_rows() == []


@pytest.mark.parametrize(
    ("line", "text"),
    [
        (json.dumps(with_(race="x" * 3000)), "record 3 is 3,"),
        ("[" * 600 + "]" * 600, "record 3 is nested more than 254 levels deep"),
    ],
    ids=["a file with an oversize record", "a file with a line nested 600 deep"],
)
def test_a_file_stops_at_a_record_over_a_limit(
    serving: Client, tmp_path: Path, line: str, text: str
) -> None:
    path = tmp_path / "records.jsonl"
    path.write_bytes(jsonl(*[GOOD_JSON] * 3, line, GOOD_JSON))
    done = run_mlq(
        "batch", "submit", str(path), "--chunk-size", "2", env={"MLQ_MAX_RECORD_BYTES": "2000"}
    )
    one_clear_line(done, text)
    assert "sending stopped after 2 records (positions 2 on were not sent)" in done.stderr
    rows = wait_rows(2)
    assert [r.batch_position for r in rows] == [0, 1]


@pytest.mark.parametrize(
    ("args", "env", "text"),
    [
        (
            ["--record", json.dumps(with_(race="x" * 600))],
            {"MLQ_MAX_RECORD_BYTES": "500"},
            "the record is 888 bytes as JSON, more than MLQ_MAX_RECORD_BYTES=500 allows",
        ),
        (["--record", GOOD_JSON, "--request-id", "r" * 200], {}, "request_id is 200 characters"),
    ],
    ids=["mlq predict with a record over the limit", "mlq predict with a long request id"],
)
def test_mlq_predict_refuses_before_sending(
    serving: Client, args: list[str], env: dict[str, str], text: str
) -> None:
    done = run_mlq("predict", *args, "--wait", env=env)
    one_clear_line(done, text)
    assert all_rows() == []
