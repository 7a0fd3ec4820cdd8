"""Making arbitrary decoded JSON storable in PostgreSQL's JSONB.

Python's json module reads NaN and Infinity, which JSONB refuses; a record holding
them is invalid anyway, but its row (with the record as sent) must still be written.
"""

from __future__ import annotations

import math
from typing import Any

# Deeper structures are stored as a note, not walked: nothing valid is nested at all.
MAX_DEPTH = 32


def json_safe(value: Any, depth: int = 0) -> Any:
    """The value with non-finite floats as strings ('NaN', 'Infinity', '-Infinity')."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            return f"<{type(value).__name__} nested deeper than {MAX_DEPTH} levels, not stored>"
        if isinstance(value, dict):
            return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
        return [json_safe(v, depth + 1) for v in value]
    return value
