"""The errors mlqueue raises, one base class, the docstring as the default message.

MlqError
 +-- ConfigurationError         a setting is missing or unsafe
 +-- InvalidRecordError         a record fails validation (names the field and why)
 +-- SelectionError             no algorithm can serve the request
 |    +-- UnknownEndpointError
 |    +-- NoAlgorithmError
 |    +-- AmbiguousSelectionError
 +-- ArtifactError              a model file is missing or does not match its manifest
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
        super().__init__(f"field {field!r}: {reason}" if field else reason)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "field": self.field}


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


class UnknownRequestError(MlqError):
    """No request with this id was ever issued, or its record has expired."""

    code = "unknown_request"


class TransientError(MlqError):
    """A service is briefly unavailable; the task will be retried."""

    code = "transient"
