"""Reading batch input as a stream of records: CSV with a header, JSON Lines, a pandas
DataFrame, or any iterable of dicts. Files are read line by line, never whole.

CSV cells carry no types, so a cell that reads as a finite number is sent as a number,
an empty cell as null, and anything else as the string it is. A JSON Lines line that is
not valid JSON is sent as its text, so the worker records it with a clear error instead
of the whole batch failing.

The limits MLQ_MAX_BATCH_RECORDS and MLQ_MAX_RECORD_BYTES are enforced here, before
records are sent: a file is counted when it is opened, a sized input (a DataFrame, a
list) before its first chunk, and every chunk is checked before it goes.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Iterable, Iterator, Sized
from pathlib import Path
from typing import IO, Any

from producer.batches import BatchSubmitError
from shared.contracts import record_limit_error
from shared.errors import BatchTooLargeError, MlqError, RecordTooLargeError
from shared.settings import get_settings

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
        except (json.JSONDecodeError, RecursionError):  # nested past Python's limit too
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
    refuse_too_many(path, fmt)
    handle = _open(path)
    return handle, (csv_records(handle) if fmt == "csv" else jsonl_records(handle))


def _open(path: Path) -> IO[str]:
    return path.open(encoding="utf-8", errors="replace", newline="")


def refuse_too_many(path: Path, fmt: str) -> None:
    """Raise BatchTooLargeError for a file of more than MLQ_MAX_BATCH_RECORDS records.

    Cheap: a record takes two bytes at least (a character and a line end), so a file
    too small to exceed the limit is not read; a bigger one has its line ends counted
    in binary, and only one with more lines than the limit is parsed (without converting
    cells) to count its records exactly. A pipe is not read twice: chunks are counted
    as they are sent instead (``checked_chunks``).
    """
    limit = get_settings().max_batch_records
    if not path.is_file() or (path.stat().st_size + 1) // 2 <= limit:
        return
    if _count_lines(path) <= limit:
        return
    with _open(path) as handle:
        records: Iterable[object]
        if fmt == "csv":
            rows = csv.reader(handle, skipinitialspace=True)
            next(rows, None)  # the header
            records = (row for row in rows if row)
        else:
            records = (line for line in handle if line.strip())
        count = sum(1 for _ in itertools.islice(records, limit + 1))
    if count > limit:
        raise BatchTooLargeError(count, limit, at_least=True)


def _count_lines(path: Path) -> int:
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def checked_chunks(records: Any, size: int, batch_id: str) -> Iterator[list[Any]]:
    """Chunks of ``size`` records, each checked against the limits before it is sent.

    The caller sends each chunk before asking for the next, so when a later chunk breaks
    a limit, exactly the chunks before it went: the batch stops with BatchSubmitError
    saying how many. A problem in the first chunk, or a sized input over the limit,
    raises BatchTooLargeError or RecordTooLargeError before anything is sent.
    """
    limit = get_settings().max_batch_records
    stream = iter_records(records)
    if isinstance(records, Sized) and len(records) > limit:
        raise BatchTooLargeError(len(records), limit)
    sent = 0
    for chunk in chunked(stream, size):
        broken = _broken_limit(chunk, sent)
        if broken is not None:
            problem, remedy = broken
            if not sent:
                raise problem
            raise BatchSubmitError(
                f"batch {batch_id}: {problem}; sending stopped after {sent:,} records "
                f"(positions {sent} on were not sent): {remedy}, and submit the same input "
                f"again with batch id {batch_id} to finish it"
            ) from problem
        yield chunk
        sent += len(chunk)


def _broken_limit(chunk: list[Any], start: int) -> tuple[MlqError, str] | None:
    """The limit a chunk starting at position ``start`` breaks, and what to do about it."""
    settings = get_settings()
    if start + len(chunk) > settings.max_batch_records:
        error: MlqError = BatchTooLargeError(
            start + len(chunk), settings.max_batch_records, at_least=True
        )
        return error, "raise MLQ_MAX_BATCH_RECORDS (or submit the rest under a new batch id)"
    for position, record in enumerate(chunk, start):
        refused = record_limit_error(record, settings.max_record_bytes, f"record {position}")
        if isinstance(refused, RecordTooLargeError):
            return refused, f"make record {position} smaller, or raise MLQ_MAX_RECORD_BYTES"
        if refused is not None:
            return refused, f"fix record {position}"
    return None


def chunked(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(records)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
