"""Reading batch input as a stream of records: CSV with a header, JSON Lines, a pandas
DataFrame, or any iterable of dicts. Files are read line by line, never whole.

CSV cells carry no types, so a cell that reads as a finite number is sent as a number,
an empty cell as null, and anything else as the string it is. A JSON Lines line that is
not valid JSON is sent as its text, so the worker records it with a clear error instead
of the whole batch failing.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from shared.errors import MlqError

FORMATS = ("csv", "jsonl")


class BatchInputError(MlqError):
    """The batch input cannot be read."""

    code = "batch_input"


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise BatchInputError(f"cannot tell the format of {path.name}: use --format csv or jsonl")


def csv_cell(text: str) -> Any:
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def csv_records(handle: IO[str]) -> Iterator[dict[str, Any]]:
    reader = csv.reader(handle, skipinitialspace=True)
    header = next(reader, None)
    if not header:
        raise BatchInputError("the CSV file is empty: a header line is required")
    header = [name.strip() for name in header]
    for row in reader:
        if not row:
            continue
        # A short or long row still becomes a record, so its error names the field.
        record = {name: csv_cell(cell) for name, cell in zip(header, row, strict=False)}
        for extra in range(len(header), len(row)):
            record[f"column {extra + 1}"] = csv_cell(row[extra])
        yield record


def jsonl_records(handle: IO[str]) -> Iterator[Any]:
    for line in handle:
        text = line.strip()
        if not text:
            continue
        try:
            yield json.loads(text)
        except json.JSONDecodeError:
            yield text


def frame_records(frame: Any, chunk_size: int = 10_000) -> Iterator[dict[str, Any]]:
    """The rows of a pandas DataFrame as dicts of plain Python values, NaN as null."""
    for start in range(0, len(frame), chunk_size):
        part = frame.iloc[start : start + chunk_size]
        yield from part.astype(object).where(part.notna(), None).to_dict("records")


def iter_records(source: Any) -> Iterator[Any]:
    """Records from a DataFrame or any iterable of records."""
    if hasattr(source, "iloc") and hasattr(source, "columns"):
        return frame_records(source)
    if isinstance(source, str | bytes | dict):
        raise BatchInputError("a batch is a DataFrame or an iterable of records, not one record")
    return iter(source)


def open_records(path: Path, fmt: str | None = None) -> tuple[IO[str], Iterator[Any]]:
    """An open file and the records read from it (close the file when done)."""
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise BatchInputError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    handle = path.open(encoding="utf-8", errors="replace", newline="")
    return handle, (csv_records(handle) if fmt == "csv" else jsonl_records(handle))


def chunked(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
