"""Reading request bodies within the limits: a size cap checked before and while
reading, the media types a route takes (else 415), and JSON or form-encoded fields.

A form field carries no type, so it is read as a CSV cell is (``csv_cell``): a finite
number as a number, an empty field as null, anything else as text. That is what lets
the tutorial's clients (``requests.post(url, record)`` sends a form) work unchanged.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request

from producer.api.problems import Problem
from producer.batch_input import csv_cell
from shared.settings import get_settings

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def unsupported(given: str, accepted: tuple[str, ...]) -> Problem:
    return Problem(
        415,
        "unsupported_media_type",
        f"Content-Type {given or '(none)'!r} is not accepted here; send {' or '.join(accepted)}",
        field="Content-Type",
    )


async def read_body(request: Request, limit: int | None = None) -> bytes:
    limit = limit or get_settings().api_max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, at_least=True)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(size: int, limit: int, *, at_least: bool = False) -> Problem:
    return Problem(
        413,
        "body_too_large",
        f"the body is {'at least ' if at_least else ''}{size:,} bytes, more than "
        f"MLQ_API_MAX_BODY_BYTES={limit} allows (send many records as a batch upload)",
    )


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise Problem(400, "invalid_json", f"the body is not valid JSON: {error}") from None


async def json_body(request: Request) -> Any:
    kind = media_type(request)
    if kind != JSON and not kind.endswith("+json"):
        raise unsupported(kind, (JSON,))
    return parse_json(await read_body(request))


async def json_or_form(request: Request) -> dict[str, Any]:
    """A JSON object, or form fields typed as CSV cells are (the tutorial's routes)."""
    kind = media_type(request)
    if kind == FORM:
        text = (await read_body(request)).decode("utf-8", "replace")
        return {name: csv_cell(value) for name, value in parse_qsl(text, keep_blank_values=True)}
    if kind != JSON and not kind.endswith("+json"):
        raise unsupported(kind, (JSON, FORM))
    value = parse_json(await read_body(request))
    if not isinstance(value, dict):
        raise Problem(422, "invalid_request", "the body must be a JSON object", field="body")
    return value
