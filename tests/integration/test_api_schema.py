"""Property tests of every operation against the API's own OpenAPI document
(schemathesis): whatever a client sends, no 500, and every answer matches the document.
Kept to a few examples per operation, so that the suite stays fast; set
MLQ_FUZZ_EXAMPLES=N (and MLQ_FUZZ_RANDOM=1 for new examples each run) to search
longer, as before a release."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from producer.api.app import app

pytestmark = pytest.mark.integration


@schemathesis.serializer("application/x-ndjson")
def json_lines(_context: Any, value: Any) -> bytes:
    """A generated body as JSON Lines: a string as it is, anything else one JSON line."""
    return value.encode() if isinstance(value, str) else json.dumps(value).encode() + b"\n"


# The document the server serves at /openapi.json (the same app, built here).
schema = schemathesis.openapi.from_dict(app.openapi())


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("MLQ_FUZZ_EXAMPLES", "8")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=not os.environ.get("MLQ_FUZZ_RANDOM"),
)
def test_no_operation_fails_or_breaks_its_document(
    case: Any, api_server: Any, api_keys: dict[str, str], clean_db: str
) -> None:
    response = case.call(
        base_url=api_server.url,
        headers={"Authorization": f"Bearer {api_keys['all']}"},
        timeout=30,
    )
    case.validate_response(
        response,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
