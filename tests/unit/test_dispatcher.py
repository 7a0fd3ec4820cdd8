"""The API's micro-batching policy, with the broker and the result backend replaced by
fakes: a lone request goes at once, concurrent ones are grouped while the workers are
busy, each record gets its own result, and a failed send fails its own requests only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from producer.api import dispatcher as module
from producer.api.dispatcher import Dispatcher, Lane

LANE = Lane("income_classifier", None, None)


class FakeResults:
    """Results stored by the test, as a worker would store them."""

    pushed = False

    def __init__(self) -> None:
        self.futures: dict[str, asyncio.Future[dict[str, Any]]] = {}

    @contextlib.asynccontextmanager
    async def watching(self, *ids: str) -> AsyncIterator[list[asyncio.Future[dict[str, Any]]]]:
        loop = asyncio.get_running_loop()
        for request_id in ids:
            self.futures.setdefault(request_id, loop.create_future())
        yield [self.futures[request_id] for request_id in ids]

    def answer(self, request_id: str) -> None:
        result = {"request_id": request_id, "status": "OK", "label": "<=50K"}
        self.futures[request_id].set_result({"status": "SUCCESS", "result": result})


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The groups sent, as lists of request ids; marking ids needs no backend here."""
    groups: list[list[str]] = []

    def send(self: Dispatcher, lane: Lane, payloads: list[dict[str, Any]]) -> None:
        if any(p["record"] == "unsendable" for p in payloads):
            raise RuntimeError("broker down")
        groups.append([p["request_id"] for p in payloads])

    async def no_marks(results: Any, ids: list[str]) -> None:
        return None

    monkeypatch.setattr(Dispatcher, "_send", send)
    monkeypatch.setattr(module.issued, "mark_sent", no_marks)
    return groups


def payload(i: int, record: Any = None) -> dict[str, Any]:
    return {"request_id": f"r{i}", "record": record or {"age": i}}


def test_a_lone_request_goes_at_once_and_gets_its_result(sent: list[list[str]]) -> None:
    async def story() -> None:
        results = FakeResults()
        dispatcher = Dispatcher(
            None,
            results,
            max_size=64,
            max_in_flight=1,
            result_timeout_s=5,  # type: ignore[arg-type]
        )
        item = dispatcher.submit(LANE, payload(1))
        await item.sent
        assert sent == [["r1"]]
        results.answer("r1")
        assert (await item.result)["label"] == "<=50K"  # type: ignore[index]
        await dispatcher.close()

    asyncio.run(story())


def test_requests_arriving_while_the_workers_are_busy_go_as_one_group(
    sent: list[list[str]],
) -> None:
    async def story() -> None:
        results = FakeResults()
        dispatcher = Dispatcher(
            None,
            results,
            max_size=3,
            max_in_flight=1,
            result_timeout_s=5,  # type: ignore[arg-type]
        )
        first = dispatcher.submit(LANE, payload(0))
        await first.sent
        held = [dispatcher.submit(LANE, payload(i)) for i in range(1, 6)]
        await asyncio.sleep(0.01)
        # Three filled a group (max_size) and went; two wait for the first to return.
        assert sent == [["r0"], ["r1", "r2", "r3"]]
        results.answer("r0")
        await asyncio.gather(*(item.sent for item in held))
        assert sent[-1] == ["r4", "r5"]
        for i in range(1, 6):
            results.answer(f"r{i}")
        answers = await asyncio.gather(*(item.result for item in held))
        assert [a["request_id"] for a in answers] == ["r1", "r2", "r3", "r4", "r5"]  # type: ignore[index]
        await dispatcher.close()

    asyncio.run(story())


def test_a_send_that_fails_fails_only_its_own_requests(sent: list[list[str]]) -> None:
    async def story() -> None:
        results = FakeResults()
        dispatcher = Dispatcher(
            None,
            results,
            max_size=64,
            max_in_flight=2,
            result_timeout_s=5,  # type: ignore[arg-type]
        )
        bad = dispatcher.submit(LANE, payload(1, "unsendable"))
        good = dispatcher.submit(LANE, payload(2))
        with pytest.raises(RuntimeError, match="broker down"):
            await bad.sent
        await good.sent
        assert sent == [["r2"]]
        await dispatcher.close()

    asyncio.run(story())
