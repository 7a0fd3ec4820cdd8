"""Errors as ``application/problem+json`` (RFC 9457): a status, a stable ``code`` a
client can branch on, what went wrong, and the field it is about.

Every error the API answers goes through here: an mlqueue error by its code, a
validation error of FastAPI's by the field, anything unexpected as a 500 that says
only that it was logged (never a trace).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import MlqError

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"

# The HTTP status of each mlqueue error code; any other MlqError is a 422 (the request
# was understood but cannot be served as it is).
STATUS_OF_CODE = {
    "unknown_request": 404,
    "unknown_endpoint": 404,
    "unknown_batch": 404,
    "unknown_ab_test": 404,
    "unknown_api_key": 404,
    "record_too_large": 413,
    "batch_too_large": 413,
    "broker_unavailable": 503,
    "database_unavailable": 503,
    "no_worker": 503,
    "internal": 502,
    "artifact": 502,
    "poison_message": 502,
    "task_failed": 502,
}

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class Problem(Exception):
    """An error answer: raise it anywhere in a route."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.headers = headers or {}
        self.extra = extra

    @classmethod
    def of(cls, error: MlqError, **extra: Any) -> Problem:
        field = extra.pop("field", error.as_dict().get("field"))
        return cls(
            STATUS_OF_CODE.get(error.code, 422), error.code, error.message, field=field, **extra
        )

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://mlqueue.dev/problems/{self.code}",
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if self.field is not None:
            body["field"] = self.field
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body

    def response(self, instance: str | None = None) -> Response:
        return Response(
            orjson.dumps(self.body(instance), default=str),
            status_code=self.status,
            media_type=MEDIA_TYPE,
            headers=self.headers,
        )


def from_error_info(error: dict[str, Any], **extra: Any) -> Problem:
    """The problem of a result's ``error`` ({code, message, field?})."""
    code = str(error.get("code", "mlq_error"))
    return Problem(
        STATUS_OF_CODE.get(code, 422),
        code,
        str(error.get("message", "")),
        field=error.get("field"),
        **extra,
    )


def validation_problem(errors: list[dict[str, Any]]) -> Problem:
    """FastAPI's request validation errors, said as one problem naming the first field."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    field = ".".join(
        location[1:] if location[:1] in (["query"], ["path"], ["header"]) else location
    )
    return Problem(
        422,
        "invalid_request",
        f"{field or 'the request'}: {first.get('msg', 'is invalid')}",
        field=field or None,
        errors=[
            {"field": ".".join(map(str, e.get("loc", ()))), "reason": e.get("msg")}
            for e in errors[:20]
        ],
    )


class UnexpectedErrors:
    """The last line: an exception no handler knows is logged with its traceback and
    answered as a 500 problem that says only that (Starlette's own last line would
    close the connection after answering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            log.exception("%s %s failed", scope["method"], scope["path"])
            if started:
                raise
            problem = Problem(500, "internal", "the server failed on this request; it was logged")
            await problem.response(scope["path"])(scope, receive, send)
