"""What a request must be before it is scored: keyable, and a record within the limits.

Producers check the same before sending, but one in another language may send anything:
a worker answers such a request with an error instead of failing on it.
"""

from __future__ import annotations

from shared.contracts import (
    BATCH_SHAPED_ID,
    MAX_BATCH_ID_LENGTH,
    MAX_BATCH_POSITION,
    MAX_ENDPOINT_LENGTH,
    MAX_REQUEST_ID_LENGTH,
    key_problem,
    parse_batch_request_id,
    record_limit_error,
)
from shared.errors import InvalidRecordError, InvalidRequestError
from shared.settings import get_settings


def size_error(record: object) -> InvalidRecordError | None:
    """The error of a record over MLQ_MAX_RECORD_BYTES (or nested too deep), or None.

    A typical record measures in under a microsecond (orjson).
    """
    return record_limit_error(record, get_settings().max_record_bytes)


def unkeyable(request_id: object, endpoint: object) -> InvalidRequestError | None:
    """The error of a request no row can hold: its id cannot key one (not a string, empty,
    too long, a NUL), or its endpoint cannot be stored in one. None for any other."""
    problem = key_problem(request_id, MAX_REQUEST_ID_LENGTH)
    if problem:
        return InvalidRequestError(
            "request_id", f"{problem}; no row can be keyed by it, so none was written"
        )
    problem = key_problem(endpoint, MAX_ENDPOINT_LENGTH, empty_ok=True)
    if problem:
        return InvalidRequestError(
            "endpoint", f"{problem}; no row can be filed under it, so none was written"
        )
    return None


def chunk_problem(
    batch_id: object, endpoint: object, start: object, records: object
) -> InvalidRequestError | None:
    """The error of a chunk whose rows could not be keyed or filed, or None.

    Only a producer that builds messages itself can send one; it gets no rows (no key
    for them exists) and the task fails with this error, logged.
    """
    problem = key_problem(batch_id, MAX_BATCH_ID_LENGTH)
    if problem:
        return InvalidRequestError("batch_id", f"{problem}; no row can be keyed by it")
    refused = unkeyable("-", endpoint)
    if refused is not None:
        return refused
    if not isinstance(records, list):
        return InvalidRequestError("records", f"must be an array, got {type(records).__name__}")
    if type(start) is not int or not 0 <= start <= MAX_BATCH_POSITION - len(records):
        return InvalidRequestError(
            "start",
            f"must be a whole number from 0 to {MAX_BATCH_POSITION} less the chunk's "
            f"records, got {start!r:.40}",
        )
    return None


def batch_shaped(request_id: str) -> InvalidRequestError | None:
    """The error of a single request whose id a batch's record would have (``B:7``)."""
    if parse_batch_request_id(request_id) is None:
        return None
    return InvalidRequestError("request_id", f"{BATCH_SHAPED_ID}; no row was written")
