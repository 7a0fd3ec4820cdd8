"""The reconciler against the session's worker: work an mlq producer accepted whose
message the broker then lost is sent again and ends with exactly one row, scored once;
what a live worker holds is left alone. Each loss is also run with the ledger switched
off (MLQ_LEDGER=off), where the same check fails: the test can fail.

The loss is planted by dropping the message in the producer after the ledger write, as
a Redis that lost it (or a worker killed in kombu's pop window) would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import func, select, update

import producer.batch_submit
import producer.predictions
from producer import Client
from shared.celery_app import app
from shared.contracts import EXAMPLE_RECORD, chunk_task_id
from shared.db.batches import create_batch
from shared.db.engine import autocommit_connection, session_scope
from shared.db.ledger import pack, record_chunk, renew_leases
from shared.db.models import BatchChunk, MLRequest, utcnow
from shared.settings import get_settings
from tests.conftest import BACKEND_DB, REDIS_URL
from tests.integration.conftest import run_mlq
from workers.reconciler import reconcile

pytestmark = pytest.mark.integration

CONFIRM = timedelta(seconds=get_settings().reconcile_after_s + get_settings().lease_s * 2)


@pytest.fixture
def counts() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(f"{REDIS_URL}/{BACKEND_DB}")
    client.delete("scored", "written")
    yield client
    client.close()


@pytest.fixture(params=["on", "off"])
def ledger(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("MLQ_LEDGER", request.param)
    get_settings.cache_clear()
    yield str(request.param)
    monkeypatch.undo()
    get_settings.cache_clear()


def lose(monkeypatch: pytest.MonkeyPatch, module: Any, *, keep: Any = lambda kwargs: False) -> None:
    """Messages sent through ``module`` vanish after the ledger write (unless ``keep``)."""
    real = module.send_task

    def send_or_lose(app: Any, name: str, **options: Any) -> Any:
        if keep(options["kwargs"]):
            return real(app, name, **options)
        return None

    monkeypatch.setattr(module, "send_task", send_or_lose)


def reconcile_until_resent() -> list[dict[str, int]]:
    """Two passes as beat would make them, far enough apart to confirm the loss."""
    later = utcnow() + CONFIRM
    return [reconcile(app, now=later), reconcile(app, now=later + CONFIRM)]


def rows(*request_ids: str) -> int:
    with session_scope() as session:
        query = select(func.count()).select_from(MLRequest).where(MLRequest.id.in_(request_ids))
        return int(session.execute(query).scalar_one())


def wait_rows(request_ids: list[str], expected: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while (found := rows(*request_ids)) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def test_a_single_request_the_broker_lost_is_sent_again_and_scored_once(
    client: Client, counts: redis.Redis, ledger: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lose(monkeypatch, producer.predictions)
    request_id = client.predict(EXAMPLE_RECORD)  # returned: accepted
    monkeypatch.undo()
    passes = reconcile_until_resent()
    found = wait_rows([request_id], 1, timeout=20 if ledger == "on" else 3)
    if ledger == "off":
        # Nothing durable knew of it: it is lost for good. This is the check failing.
        assert found == 0 and passes[1]["resent"] == 0
        return
    assert passes[0]["overdue"] == 1 and passes[1]["resent"] == 1
    assert found == 1
    assert int(counts.hget("scored", request_id) or 0) == 1
    assert int(counts.hget("written", request_id) or 0) == 1
    assert client.result(request_id, timeout=5)["status"] == "OK"
    # Finished: the next pass removes it from the ledger and sends nothing.
    assert reconcile(app, now=utcnow() + CONFIRM * 3)["resent"] == 0


def test_a_lost_chunk_is_sent_again_or_named_lost_and_resumed(
    client: Client, counts: redis.Redis, ledger: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(EXAMPLE_RECORD) + "\n" for _ in range(3000)))
    lose(monkeypatch, producer.batch_submit, keep=lambda kwargs: kwargs["start"] != 1000)
    client.submit_batch([EXAMPLE_RECORD] * 3000, batch_id="lossy", chunk_size=1000)
    monkeypatch.undo()
    ids = [f"lossy:{i}" for i in range(3000)]
    assert wait_rows(ids, 2000) == 2000
    status = run_mlq("batch", "status", "lossy", "--json", env={"MLQ_RECONCILE_AFTER": "0.1"})
    document = json.loads(status.stdout)
    assert status.returncode == 3 and document["missing"] == "1000-1999"
    if ledger == "off":
        # Named lost (the reconciler has nothing to send it from), and resumed by hand.
        assert document["lost"] == "1000-1999"
        assert reconcile_until_resent()[1]["resent"] == 0
        assert wait_rows(ids, 3000, timeout=3) == 2000  # the check failing
        resumed = run_mlq(
            "batch", "submit", str(path), "--batch-id", "lossy", "--resume", "--chunk-size", "1000"
        )
        assert resumed.returncode == 0, resumed.stderr
    else:
        assert document["lost"] == ""  # the ledger holds it: the reconciler sends it
        assert reconcile_until_resent()[1]["resent"] == 1
    assert wait_rows(ids, 3000) == 3000
    scored = {k.decode(): int(v) for k, v in counts.hgetall("scored").items()}
    written = {k.decode(): int(v) for k, v in counts.hgetall("written").items()}
    assert [scored.get(i, 0) for i in ids] == [1] * 3000  # resume sent only what was lost
    assert [written.get(i, 0) for i in ids] == [1] * 3000
    assert client.batch_status("lossy")["state"] == "done"


@pytest.mark.parametrize("leased", [True, False])
def test_work_a_live_worker_holds_is_not_sent_again(client: Client, leased: bool) -> None:
    """A chunk sent long ago with no row yet, whose lease a worker renews, is left
    alone; the same chunk without a lease is sent again (so the check can fail)."""
    kwargs = {
        "batch_id": "held",
        "endpoint": "income_classifier",
        "start": 0,
        "records": [EXAMPLE_RECORD],
    }
    with session_scope() as session:
        create_batch(
            session,
            batch_id="held",
            endpoint="income_classifier",
            status=None,
            version=None,
            source=None,
        )
        record_chunk(session, batch_id="held", start=0, count=1, payload=pack(kwargs))
        session.execute(update(BatchChunk).values(sent_at=utcnow() - timedelta(hours=1)))
    passes = []
    for pause in (0.0, get_settings().lease_s * 1.5 + 0.5):
        time.sleep(pause)
        if leased:
            with autocommit_connection() as connection:
                renew_leases(connection, worker="w", held=[(chunk_task_id("held", 0), None)])
        passes.append(reconcile(app))
    if leased:
        assert [p["waiting"] for p in passes] == [1, 1] and passes[1]["resent"] == 0
        assert rows("held:0") == 0
    else:
        assert passes[0]["overdue"] == 1 and passes[1]["resent"] == 1
        assert wait_rows(["held:0"], 1) == 1


def test_a_dead_letter_is_listed_and_replayed_into_a_real_row(client: Client) -> None:
    """As a give-up leaves it: an error row and a letter; replay scores it afresh."""
    from workers.deliveries import PoisonMessageError, give_up

    request_id = "dead-1"
    kwargs = {"record": EXAMPLE_RECORD, "endpoint": "income_classifier", "request_id": request_id}
    give_up("mlq.predict", request_id, PoisonMessageError("given up (planted)"), kwargs)
    with session_scope() as session:
        assert (
            session.scalars(select(MLRequest).where(MLRequest.id == request_id)).first().error_code
            == "poison_message"
        )  # type: ignore[union-attr]
    listed = json.loads(run_mlq("dead-letters", "list", "--json").stdout)
    assert [(x["task_id"], x["error_code"]) for x in listed] == [(request_id, "poison_message")]
    replayed = run_mlq("dead-letters", "replay", str(listed[0]["id"]), "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["removed_error_rows"] == 1
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with session_scope() as session:
            row = session.scalars(select(MLRequest).where(MLRequest.id == request_id)).first()
            if row is not None:
                break
        time.sleep(0.1)
    assert row is not None and row.status == "OK"
    assert run_mlq("dead-letters", "list", "--json").stdout.strip() == "[]"
    assert run_mlq("dead-letters", "replay", "999").returncode == 4
