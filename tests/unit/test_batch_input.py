"""Reading batch input: CSV cells become JSON values, bad lines become bad records."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from producer.batch_input import (
    BatchInputError,
    chunked,
    csv_cell,
    csv_records,
    detect_format,
    iter_records,
    jsonl_records,
    open_records,
)
from producer.batches import RequestIds
from shared.contracts import batch_request_id, parse_batch_request_id


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("37", 37),
        ("2.5", 2.5),
        ("", None),
        ("Private", "Private"),
        ("?", "?"),
        ("nan", "nan"),
        ("inf", "inf"),
        ("-3", -3),
    ],
)
def test_csv_cells_become_json_values(text: str, value: object) -> None:
    assert csv_cell(text) == value


def test_csv_rows_follow_the_header_and_keep_extra_cells() -> None:
    handle = io.StringIO("age, workclass\n37, Private\n\n41\n50,Private,surplus\n")
    assert list(csv_records(handle)) == [
        {"age": 37, "workclass": "Private"},
        {"age": 41},
        {"age": 50, "workclass": "Private", "column 3": "surplus"},
    ]


def test_an_empty_csv_file_is_a_clear_error() -> None:
    with pytest.raises(BatchInputError, match="empty"):
        list(csv_records(io.StringIO("")))


def test_a_jsonl_line_that_is_not_json_is_kept_as_its_text() -> None:
    handle = io.StringIO('{"age": 37}\n\n{broken\n[1, 2]\n')
    assert list(jsonl_records(handle)) == [{"age": 37}, "{broken", [1, 2]]


def test_formats_come_from_the_file_name(tmp_path: Path) -> None:
    assert detect_format(Path("a.csv")) == "csv"
    assert detect_format(Path("a.jsonl")) == "jsonl"
    with pytest.raises(BatchInputError, match="--format"):
        detect_format(Path("a.parquet"))
    path = tmp_path / "bytes.csv"
    path.write_bytes(b"name\ncaf\xe9\n")
    handle, records = open_records(path)
    with handle:
        assert list(records) == [{"name": "caf\ufffd"}]


def test_a_frame_becomes_plain_values_with_nan_as_null() -> None:
    frame = pd.DataFrame({"age": [37, 41], "gain": [1.5, np.nan], "sex": ["Male", None]})
    records = list(iter_records(frame))
    assert records == [
        {"age": 37, "gain": 1.5, "sex": "Male"},
        {"age": 41, "gain": None, "sex": None},
    ]
    assert type(records[0]["age"]) is int
    assert not any(isinstance(v, float) and math.isnan(v) for r in records for v in r.values())


def test_one_record_is_not_a_batch() -> None:
    with pytest.raises(BatchInputError, match="not one record"):
        iter_records({"age": 37})


def test_chunks_cover_the_input_in_order() -> None:
    assert list(chunked(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]


def test_request_ids_are_derived_from_batch_and_position() -> None:
    ids = RequestIds("b1", 3)
    assert list(ids) == ["b1:0", "b1:1", "b1:2"]
    assert ids[-1] == "b1:2" and ids[1:] == ["b1:1", "b1:2"]
    with pytest.raises(IndexError):
        ids[3]
    assert parse_batch_request_id(batch_request_id("b1", 41)) == ("b1", 41)
    assert parse_batch_request_id("3f2c-uuid") is None
