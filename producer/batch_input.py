"""Reading batch input as a stream of records: CSV with a header, JSON Lines, a pandas
DataFrame, or any iterable of dicts. Files are read line by line, never whole.

CSV cells carry no types, so a cell that reads as a finite number is sent as a number,
an empty cell as null, and anything else as the string it is. A JSON Lines line that is
not valid JSON is sent as its text, so the worker records it with a clear error instead
of the whole batch failing.

A CSV file is read twice: once to check it before anything is sent (syntax, every row
as wide as the header, the named columns present, MLQ_MAX_BATCH_RECORDS), naming the
line of the first problem, and once to send it. A quote that is never closed would
otherwise swallow the lines after it into one field, silently.

The limits MLQ_MAX_BATCH_RECORDS and MLQ_MAX_RECORD_BYTES are enforced here, before
records are sent: a file is counted when it is opened, a sized input (a DataFrame, a
list) before its first chunk, and every chunk is checked before it goes.
"""

from __future__ import annotations

import csv
import difflib
import itertools
import json
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence, Sized
from pathlib import Path
from typing import IO, Any

from producer.batch_columns import BatchColumns
from producer.batches import BatchInputError, BatchSubmitError
from shared.contracts import record_limit_error
from shared.errors import BatchTooLargeError, MlqError, RecordTooLargeError
from shared.settings import get_settings

FORMATS = ("csv", "jsonl")


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


def csv_records(
    handle: IO[str],
    *,
    name: str = "the CSV file",
    text_columns: Collection[str] = (),
    check: Callable[[list[str]], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Records keyed by the header; cells of ``text_columns`` (an id column) stay text.
    ``check`` sees the header before any record is read (a stream read once)."""
    reader = csv.reader(handle, skipinitialspace=True, strict=True)
    header = csv_header(reader, name)
    if check is not None:
        check(header)
    as_text = [column in text_columns for column in header]
    for row in csv_rows(reader, len(header), name):
        yield {
            column: cell if text else csv_cell(cell)
            for column, cell, text in zip(header, row, as_text, strict=True)
        }


def csv_header(reader: Any, name: str = "the CSV file") -> list[str]:
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise BatchInputError(f"{name}, line 1: {error}") from None
    if not header:
        raise BatchInputError(f"{name} is empty: a header line is required")
    header = [column.strip() for column in header]
    repeated = sorted({column for column in header if header.count(column) > 1})
    if repeated:
        raise BatchInputError(
            f"{name}, line 1: the header names {', '.join(map(repr, repeated))} more than once"
        )
    return header


def csv_rows(reader: Any, width: int, name: str = "the CSV file") -> Iterator[list[str]]:
    """The rows after the header; a syntax error, or a row not as wide as the header,
    raises BatchInputError naming the line the row starts on."""
    while True:
        first = reader.line_num + 1
        try:
            row = next(reader, None)
        except csv.Error as error:
            # The csv module's words for a quote still open when the file ends.
            problem = (
                "a quoted field is not closed before the end of the file"
                if str(error) == "unexpected end of data"
                else str(error)
            )
            raise BatchInputError(
                _spanning(f"{name}, line {first}: {problem}", first, reader.line_num)
            ) from None
        if row is None:
            return
        if not row:
            continue  # a blank line
        if len(row) != width:
            raise BatchInputError(
                _spanning(
                    f"{name}, line {first}: {len(row)} fields, the header has {width}",
                    first,
                    reader.line_num,
                )
            )
        yield row


def _spanning(problem: str, first: int, last: int) -> str:
    # A quoted field may hold line ends; one that runs on was most likely never closed.
    if last > first:
        return f"{problem} (the row runs from line {first} to {last}: is a quote not closed?)"
    return problem


def check_header(
    header: Sequence[str], columns: Sequence[str], *, ignored: Collection[str] = ()
) -> None:
    """Refuse a header that does not hold exactly ``columns`` (the model's input), besides
    the ``ignored`` ones (the id column and ignored columns): names the missing columns,
    the unknown ones (a near miss of a missing column: a typo) and the extra ones."""
    given = [name for name in header if name not in ignored]
    missing = [name for name in columns if name not in given]
    strangers = [name for name in given if name not in columns]
    unknown = {}
    for name in strangers:
        near = difflib.get_close_matches(_folded(name), [_folded(m) for m in missing], n=1)
        if near:
            unknown[name] = next(m for m in missing if _folded(m) == near[0])
    extra = [name for name in strangers if name not in unknown]
    if not (missing or unknown or extra):
        return
    problems = []
    if missing:
        problems.append(f"missing {', '.join(map(repr, missing))}")
    if unknown:
        guesses = ", ".join(f"{name!r} (did you mean {m!r}?)" for name, m in unknown.items())
        problems.append(f"unknown {guesses}")
    if extra:
        problems.append(f"extra {', '.join(map(repr, extra))} (--ignore-columns drops them)")
    raise BatchInputError(f"the header does not match the model's columns: {'; '.join(problems)}")


def _folded(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(" ", "-")


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


def open_records(
    path: Path, fmt: str | None = None, *, columns: BatchColumns | None = None
) -> tuple[IO[str], Iterator[Any]]:
    """An open file and the records read from it (close the file when done), checked
    first: a CSV file whole (``check_csv``), any file against MLQ_MAX_BATCH_RECORDS."""
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise BatchInputError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    columns = columns or BatchColumns()
    if fmt == "csv":
        check_csv(path, columns)
    else:
        refuse_too_many_lines(path)
    handle = _open(path)
    if fmt == "jsonl":
        return handle, jsonl_records(handle)
    text = [columns.id_column] if columns.id_column is not None else []
    return handle, csv_records(handle, name=path.name, text_columns=text)


def file_header(path: Path) -> list[str]:
    """The header of a CSV file (its syntax is checked when it is opened for sending)."""
    with _open(path) as handle:
        return csv_header(csv.reader(handle, skipinitialspace=True), path.name)


def _open(path: Path) -> IO[str]:
    return path.open(encoding="utf-8", errors="replace", newline="")


def check_csv(path: Path, columns: BatchColumns) -> None:
    """Read a CSV file once before anything is sent: its syntax, every row as wide as the
    header, the id and ignored columns in the header, and no more than
    MLQ_MAX_BATCH_RECORDS records. A pipe cannot be read twice: its rows are checked as
    they are sent instead (``csv_records``)."""
    if not path.is_file():
        return
    limit = get_settings().max_batch_records
    with _open(path) as handle:
        reader = csv.reader(handle, skipinitialspace=True, strict=True)
        header = csv_header(reader, path.name)
        columns.check(header, f"{path.name}'s header")
        count = 0
        for _ in csv_rows(reader, len(header), path.name):
            count += 1
    if count > limit:
        raise BatchTooLargeError(count, limit)


def refuse_too_many_lines(path: Path) -> None:
    """Raise BatchTooLargeError for a JSON Lines file of more than MLQ_MAX_BATCH_RECORDS
    records.

    Cheap: a record takes two bytes at least (a character and a line end), so a file
    too small to exceed the limit is not read; a bigger one has its line ends counted
    in binary, and only one with more lines than the limit has its non-blank lines
    counted. A pipe is not read twice: chunks are counted as they are sent instead
    (``checked_chunks``).
    """
    limit = get_settings().max_batch_records
    if not path.is_file() or (path.stat().st_size + 1) // 2 <= limit:
        return
    if _count_lines(path) <= limit:
        return
    with _open(path) as handle:
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


def checked_chunks(
    records: Any, size: int, batch_id: str, columns: BatchColumns | None = None
) -> Iterator[list[Any]]:
    """Chunks of ``size`` records, each checked against the limits before it is sent,
    without the columns that are not sent (``columns``; a DataFrame's are checked first).

    The caller sends each chunk before asking for the next, so when a later chunk breaks
    a limit, exactly the chunks before it went: the batch stops with BatchSubmitError
    saying how many. A problem in the first chunk, or a sized input over the limit,
    raises BatchTooLargeError or RecordTooLargeError before anything is sent.
    """
    limit = get_settings().max_batch_records
    columns = columns or BatchColumns()
    if hasattr(records, "columns"):
        columns.check([str(name) for name in records.columns], "the DataFrame")
    stream = columns.apply(iter_records(records))
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
