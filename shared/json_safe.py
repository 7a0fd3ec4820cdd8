"""Making arbitrary decoded JSON storable in PostgreSQL (JSONB and text columns).

A record that fails validation is stored as it was sent, in its error row, so whatever
it holds must be storable: Python's json module reads NaN and Infinity, which JSONB
refuses; PostgreSQL refuses the NUL character in any text and half a UTF-16 pair (a
lone surrogate, which JSON can escape as "\\ud800" and Python decodes); orjson (the
bulk writer) refuses both, and integers beyond 64 bits. Without this the row, and with
COPY its whole chunk, would fail to be written.
"""

from __future__ import annotations

import math
import re
from typing import Any

# Deeper structures are stored as a note, not walked: nothing valid is nested at all.
MAX_DEPTH = 32
INT64 = (-(2**63), 2**63 - 1)


SURROGATE = re.compile("[\ud800-\udfff]")


def safe_text(text: str) -> str:
    text = text.replace("\x00", "\ufffd")
    return text if text.isascii() else SURROGATE.sub("\ufffd", text)


def json_safe(value: Any, depth: int = 0) -> Any:
    """The value with non-finite floats as 'NaN'/'Infinity'/'-Infinity', integers beyond
    64 bits as their digits, and NUL characters and lone surrogates (in keys too) as
    U+FFFD."""
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
