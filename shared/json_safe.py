"""Making arbitrary decoded JSON storable in PostgreSQL (JSONB and text columns).

A record that fails validation is stored as it was sent, in its error row, so whatever
it holds must be storable: Python's json module reads NaN and Infinity, which JSONB
refuses; PostgreSQL refuses the NUL character in any text; orjson (the bulk writer)
refuses integers beyond 64 bits.
"""

from __future__ import annotations

import math
from typing import Any

# Deeper structures are stored as a note, not walked: nothing valid is nested at all.
MAX_DEPTH = 32
INT64 = (-(2**63), 2**63 - 1)


def safe_text(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def json_safe(value: Any, depth: int = 0) -> Any:
    """The value with non-finite floats as 'NaN'/'Infinity'/'-Infinity', integers beyond
    64 bits as their digits, and NUL characters (in keys too) as U+FFFD."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if INT64[0] <= value <= INT64[1] else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            return f"<{type(value).__name__} nested deeper than {MAX_DEPTH} levels, not stored>"
        if isinstance(value, dict):
            return {safe_text(str(k)): json_safe(v, depth + 1) for k, v in value.items()}
        return [json_safe(v, depth + 1) for v in value]
    return value
