"""The errors mlqueue raises, one base class, the docstring as the default message.

MlqError
 +-- ConfigurationError         a setting is missing or unsafe
 +-- InvalidRecordError         a record fails validation (names the field and why)
 |    +-- RecordTooLargeError    a record is bigger than MLQ_MAX_RECORD_BYTES
 +-- InvalidRequestError        a request id, batch id or endpoint no row can hold
 +-- BatchTooLargeError         a batch holds more than MLQ_MAX_BATCH_RECORDS records
 +-- SelectionError             no algorithm can serve the request
 |    +-- UnknownEndpointError
 |    +-- NoAlgorithmError
 |    +-- AmbiguousSelectionError
 +-- ArtifactError              a model file is missing or does not match its manifest
 |    +-- ArtifactMismatchError  a version registered again with another file
 +-- UnknownRequestError        a request id that was never issued (or long forgotten)
 +-- TransientError             an outage worth retrying (database, broker)

Every error has a stable ``code`` that travels in task results and MLRequest rows, so
producers in any language can branch on it without parsing messages.
"""

from __future__ import annotations

from typing import Any


class MlqError(Exception):
    """mlqueue failed."""

    code = "mlq_error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


class ConfigurationError(MlqError):
    """A setting is missing or unsafe."""

    code = "configuration"


class InvalidRecordError(MlqError):
    """The record is not valid."""

    code = "invalid_record"

    def __init__(self, field: str | None, reason: str) -> None:
        self.field = field
        self.reason = reason
        shown = repr(field) if field is None or len(field) <= 60 else repr(field[:57]) + "..."
        super().__init__(f"field {shown}: {reason}" if field is not None else reason)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "field": self.field}


class RecordTooLargeError(InvalidRecordError):
    """The record is larger than MLQ_MAX_RECORD_BYTES allows."""

    code = "record_too_large"

    def __init__(self, size: int, limit: int, what: str = "the record") -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            None,
            f"{what} is {size:,} bytes as JSON, more than MLQ_MAX_RECORD_BYTES={limit} allows",
        )


class InvalidRequestError(MlqError):
    """The request's arguments are malformed (not the record: its envelope)."""

    code = "invalid_request"

    def __init__(self, argument: str, reason: str) -> None:
        self.argument = argument
        super().__init__(f"{argument} {reason}")

    def as_dict(self) -> dict[str, Any]:
        # Under "field", where producers already look for what an error is about.
        return {**super().as_dict(), "field": self.argument}


class BatchTooLargeError(MlqError):
    """The batch holds more records than MLQ_MAX_BATCH_RECORDS allows."""

    code = "batch_too_large"

    def __init__(self, count: int, limit: int, *, at_least: bool = False) -> None:
        self.count = count
        self.limit = limit
        super().__init__(
            f"the batch holds {'at least ' if at_least else ''}{count:,} records, more than "
            f"MLQ_MAX_BATCH_RECORDS={limit} allows"
        )


class SelectionError(MlqError):
    """No algorithm can serve this request."""

    code = "selection"


class UnknownEndpointError(SelectionError):
    """The endpoint does not exist."""

    code = "unknown_endpoint"


class NoAlgorithmError(SelectionError):
    """No algorithm of the endpoint matches the selection."""

    code = "no_algorithm"


class AmbiguousSelectionError(SelectionError):
    """More than one algorithm matches the selection: name a version."""

    code = "ambiguous_selection"


class ArtifactError(MlqError):
    """A model artifact is missing or does not match its manifest."""

    code = "artifact"


class ArtifactMismatchError(ArtifactError):
    """This version is registered with another file."""

    code = "artifact_mismatch"


class UnknownRequestError(MlqError):
    """No request with this id was ever issued, or its record has expired."""

    code = "unknown_request"


class TransientError(MlqError):
    """A service is briefly unavailable; the task will be retried."""

    code = "transient"
