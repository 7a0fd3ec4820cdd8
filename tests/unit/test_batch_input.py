"""Reading batch input: CSV cells become JSON values, bad lines become bad records."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from producer.batch_columns import BatchColumns
from producer.batch_input import (
    BatchInputError,
    check_header,
    checked_chunks,
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
from shared.errors import BatchTooLargeError
from shared.settings import get_settings


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


def test_csv_rows_follow_the_header_and_skip_blank_lines() -> None:
    handle = io.StringIO('age, workclass\n37, Private\n\n41,"Self-emp,\nnot-inc"\n')
    assert list(csv_records(handle)) == [
        {"age": 37, "workclass": "Private"},
        {"age": 41, "workclass": "Self-emp,\nnot-inc"},  # a quoted line end is data
    ]


ROWS = "".join(f"{age},Private\n" for age in range(30, 38))  # 8 data lines, lines 2-9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            # The trial's file: an unterminated quote on line 3 swallowed the 6 lines after it.
            "age,workclass\n" + ROWS.replace("31,Private", '31,"Private', 1),
            "line 3: a quoted field is not closed before the end of the file "
            "(the row runs from line 3 to 9: is a quote not closed?)",
        ),
        (
            # Closed again by a later quote: the row is as wide as the header would allow,
            # but the text after the closing quote gives it away.
            "age,workclass\n"
            + ROWS.replace("31,Private", '31,"Private', 1).replace("35,Private", '35,"Private"', 1),
            "line 3: ',' expected after '\"' (the row runs from line 3 to 7",
        ),
        ("age,workclass\n" + ROWS.replace("33,Private", "33", 1), "line 5: 1 fields, the header"),
        ("age,workclass\n37,Private,surplus\n", "line 2: 3 fields, the header has 2"),
        ('age,workclass\n37,Pri"vate"x\n', None),  # a quote inside a cell is data
        ("age,age\n1,2\n", "line 1: the header names 'age' more than once"),
    ],
    ids=["unterminated quote", "quote closed late", "short row", "long row", "inner quote", "dup"],
)
def test_csv_syntax_and_row_width_errors_name_their_line(text: str, message: str | None) -> None:
    if message is None:
        assert len(list(csv_records(io.StringIO(text), name="records.csv"))) == 1
        return
    with pytest.raises(BatchInputError) as caught:
        list(csv_records(io.StringIO(text), name="records.csv"))
    assert str(caught.value).startswith("records.csv, ")
    assert message in str(caught.value)


def test_a_csv_file_is_checked_whole_before_its_first_record_is_read(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    path.write_text("age,workclass\n" + ROWS + "99\n")  # line 10 is short
    with pytest.raises(BatchInputError, match=r"records\.csv, line 10: 1 fields"):
        open_records(path)


def test_the_id_column_stays_text_and_named_columns_must_exist(tmp_path: Path) -> None:
    path = tmp_path / "records.csv"
    path.write_text("row_id,age,income\n007,37,<=50K\n")
    handle, records = open_records(path, columns=BatchColumns("row_id", ("income",)))
    with handle:
        assert list(records) == [{"row_id": "007", "age": 37, "income": "<=50K"}]
    for columns in (BatchColumns("id"), BatchColumns(None, ("label", "income"))):
        with pytest.raises(
            BatchInputError, match=r"records.csv's header has no column '(id|label)'"
        ):
            open_records(path, columns=columns)


def test_a_file_over_the_batch_limit_is_counted_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLQ_MAX_BATCH_RECORDS", "8")
    get_settings.cache_clear()
    try:
        path = tmp_path / "records.csv"
        path.write_text("age,workclass\n" + ROWS)
        open_records(path)[0].close()  # 8 records: at the limit
        path.write_text("age,workclass\n" + ROWS + '38,"Private\n2"\n')
        with pytest.raises(BatchTooLargeError, match="holds 9 records"):
            open_records(path)
    finally:
        get_settings.cache_clear()


def test_columns_not_sent_are_taken_out_and_ids_kept_in_order() -> None:
    columns = BatchColumns("row_id", ("income",))
    records = [
        {"row_id": "a", "age": 1, "income": ">50K"},
        [1, 2],  # not an object: goes as it is, with no id
        {"age": 3},  # no id
        {"row_id": 7, "age": 4},
    ]
    sent = list(columns.apply(records))
    assert sent == [{"age": 1}, [1, 2], {"age": 3}, {"age": 4}]
    assert records[0] == {"row_id": "a", "age": 1, "income": ">50K"}  # the caller's untouched
    assert columns.take_ids(3) == ["a", None, None]
    assert columns.take_ids(5) == ["7"]


def test_chunks_of_a_frame_leave_out_the_columns_not_sent() -> None:
    frame = pd.DataFrame({"row_id": ["x", "y", "z"], "age": [1, 2, 3], "income": ["a", "b", "c"]})
    columns = BatchColumns("row_id", ("income",))
    chunks = checked_chunks(frame, 2, "b1", columns)
    assert next(chunks) == [{"age": 1}, {"age": 2}]
    assert columns.take_ids(2) == ["x", "y"]
    assert next(chunks) == [{"age": 3}] and columns.take_ids(2) == ["z"]
    with pytest.raises(BatchInputError, match="the DataFrame has no column 'label'"):
        next(checked_chunks(frame, 2, "b1", BatchColumns(None, ("label",))))


def test_an_id_column_cannot_also_be_ignored() -> None:
    with pytest.raises(BatchInputError, match="name it once"):
        BatchColumns("id", ("id",))


MODEL_COLUMNS = ["age", "education-num", "sex"]


def test_a_header_that_matches_the_model_passes() -> None:
    check_header(["sex", "age", "education-num"], MODEL_COLUMNS)
    check_header(
        ["row_id", "age", "education-num", "sex", "income"],
        MODEL_COLUMNS,
        ignored={"row_id", "income"},
    )


def test_a_header_names_missing_unknown_and_extra_columns() -> None:
    with pytest.raises(BatchInputError) as caught:
        check_header(["Age", "education_num", "income", "notes"], MODEL_COLUMNS)
    assert str(caught.value) == (
        "the header does not match the model's columns: missing 'age', 'education-num', "
        "'sex'; unknown 'Age' (did you mean 'age'?), 'education_num' (did you mean "
        "'education-num'?); extra 'income', 'notes' (--ignore-columns drops them)"
    )


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
