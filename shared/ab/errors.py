"""Errors of A/B tests (subclasses of shared.errors' tree)."""

from __future__ import annotations

from shared.errors import MlqError, UnknownRequestError


class ABTestError(MlqError):
    """The A/B test cannot be started."""

    code = "ab_test"


class UnknownTestError(UnknownRequestError):
    """No A/B test has this id."""

    code = "unknown_ab_test"
