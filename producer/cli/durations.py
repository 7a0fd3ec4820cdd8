"""Durations on the command line: a number and a unit, always.

``--duration 2`` could mean two seconds or two hours; refusing it is kinder than
guessing. Every option that takes a time (``--timeout``, ``--duration``, ``--window``)
uses ``DURATION``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import click

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_duration(text: str) -> timedelta:
    """'45s', '30m', '2h', '1d' (or '1.5h'); a ValueError saying what to write otherwise."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 45s, 30m, 2h or 1d")
    number, unit = match[1], match[2].lower()
    if not unit:
        raise ValueError(
            f"{text!r} has no unit: write {number}s, {number}m, {number}h or {number}d"
        )
    if unit not in UNITS:
        raise ValueError(f"{text!r} has an unknown unit {match[2]!r}: use s, m, h or d")
    return timedelta(seconds=float(number) * UNITS[unit])


def format_duration(duration: timedelta) -> str:
    """The shortest way ``parse_duration`` reads back: 1h, 90s, 2d."""
    seconds = duration.total_seconds()
    for unit, size in sorted(UNITS.items(), key=lambda item: -item[1]):
        if seconds and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


class Duration(click.ParamType):
    """A click parameter that parses ``parse_duration``'s text into a timedelta."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


DURATION = Duration()
