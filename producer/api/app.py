"""The ASGI application: ``uvicorn producer.api.app:app`` (``mlq serve`` runs the same).

It starts the result watcher and the dispatcher with the server process, turns every
error into application/problem+json, and counts every request for ``/metrics``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import kombu.exceptions
import redis.exceptions
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from producer.api.dispatcher import Dispatcher
from producer.api.metrics import MetricsMiddleware
from producer.api.predicting import Predictions
from producer.api.problems import Problem, UnexpectedErrors, validation_problem
from producer.api.results import TaskResults
from producer.api.routes import ab_tests, batches, feedback, health, models, predictions, tutorial
from producer.cli.failures import explain
from shared.celery_app import app as default_celery
from shared.errors import MlqError
from shared.settings import get_settings

# What `explain` (the CLI's one-line failures) knows as outages.
OUTAGES: tuple[type[Exception], ...] = (
    DBAPIError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    CeleryTimeoutError,
)

DESCRIPTION = """mlqueue over HTTP: predictions, batches, feedback, models and A/B tests
for producers in any language. Send an API key as `Authorization: Bearer <key>`
(`mlq keys create`); errors are `application/problem+json` (RFC 9457)."""


def create_app(celery: Celery | None = None) -> FastAPI:
    celery = celery or default_celery

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        settings = get_settings()
        results = TaskResults(celery)
        await results.start()
        dispatcher = Dispatcher(
            celery,
            results,
            max_size=settings.api_group_max_size,
            max_in_flight=settings.api_group_max_in_flight,
            result_timeout_s=settings.api_max_wait_s,
        )
        api.state.celery = celery
        api.state.predictions = Predictions(results, dispatcher)
        try:
            yield
        finally:
            await dispatcher.close()
            await results.close()

    api = FastAPI(
        title="mlqueue",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    api.add_middleware(UnexpectedErrors)
    api.add_middleware(MetricsMiddleware)
    for module in (health, predictions, batches, feedback, models, ab_tests, tutorial):
        api.include_router(module.router)

    @api.exception_handler(Problem)
    async def problem(request: Request, error: Problem) -> Response:
        return error.response(request.url.path)

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        return validation_problem(list(error.errors())).response(request.url.path)

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return Problem(
            error.status_code, code, str(error.detail), headers=dict(error.headers or {})
        ).response(request.url.path)

    @api.exception_handler(MlqError)
    async def mlq_error(request: Request, error: MlqError) -> Response:
        return Problem.of(error).response(request.url.path)

    async def outage(request: Request, error: Exception) -> Response:
        """A service down or a worker that did not answer, said as `mlq` says it (503, or
        504 for no answer in time); anything else goes on to UnexpectedErrors."""
        failure = explain(error)
        if failure is None:
            raise error
        status = 504 if failure.code == "timeout" else 503
        return Problem(status, failure.code, failure.message).response(request.url.path)

    for kind in OUTAGES:
        api.add_exception_handler(kind, outage)

    return api


app = create_app()
