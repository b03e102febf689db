"""The file readers under generated input (hypothesis): what is written is what is read, each record
remembers the line it starts on, and arbitrary bytes give a located DataFormatError or records, never
another exception."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunesmith.data.readers import read_records
from tunesmith.utils.errors import DataFormatError

# Any text a user may type: quotes, commas, newlines, CJK, emoji, line separators; no lone surrogates
# (they cannot be written as UTF-8 at all).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
CSV_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\x00"), max_size=40)
RECORDS = st.lists(st.fixed_dictionaries({"instruction": TEXT, "output": TEXT}), min_size=1, max_size=8)
CSV_RECORDS = st.lists(st.fixed_dictionaries({"instruction": CSV_TEXT, "output": CSV_TEXT}), min_size=1, max_size=8)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _write(suffix: str, content: bytes | str) -> Path:
    d = Path(tempfile.mkdtemp())
    path = d / f"data{suffix}"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


@FAST
@given(RECORDS)
def test_jsonl_round_trip_and_lines(rows: list[dict[str, str]]) -> None:
    path = _write(".jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    recs = read_records(path)
    assert [r.data for r in recs] == rows
    assert [r.origin.line for r in recs] == list(range(1, len(rows) + 1))


@FAST
@given(RECORDS, st.sampled_from([None, 1, 2]), st.booleans())
def test_json_round_trip_and_record_start_lines(rows: list[dict[str, str]], indent: int | None, bom: bool) -> None:
    text = json.dumps(rows, ensure_ascii=False, indent=indent)
    path = _write(".json", ("\ufeff" if bom else "") + text)
    recs = read_records(path)
    assert [r.data for r in recs] == rows
    lines = text.split("\n")
    for rec in recs:  # the remembered line is where that record's object opens
        assert "{" in lines[rec.origin.line - 1]
    assert [r.origin.line for r in recs] == sorted({r.origin.line for r in recs}) or indent is None


@FAST
@given(CSV_RECORDS)
def test_csv_round_trip_with_quotes_commas_and_newlines(rows: list[dict[str, str]]) -> None:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["instruction", "output"])
    expected_lines, line = [], 2
    for r in rows:
        one = io.StringIO(newline="")
        csv.writer(one, lineterminator="\n").writerow([r["instruction"], r["output"]])
        writer.writerow([r["instruction"], r["output"]])
        expected_lines.append(line)
        line += one.getvalue().count("\n")
    path = _write(".csv", buf.getvalue())
    recs = read_records(path)
    assert [r.data for r in recs] == rows
    assert [r.origin.line for r in recs] == expected_lines


@FAST
@given(RECORDS)
def test_parquet_round_trip(rows: list[dict[str, str]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = _write(".parquet", b"")
    pq.write_table(pa.Table.from_pylist(rows), path)
    recs = read_records(path)
    assert [r.data for r in recs] == rows
    assert [r.origin.line for r in recs] == list(range(1, len(rows) + 1))


@FAST
@given(st.lists(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r"), min_size=1,
                        max_size=30).filter(lambda s: s.strip() and "\n" not in s), min_size=1, max_size=6))
def test_txt_documents_start_on_the_line_an_editor_shows(docs: list[str]) -> None:
    text = "\n\n".join(docs) + "\n"
    recs = read_records(_write(".txt", text))
    assert [r.data["text"] for r in recs] == docs
    assert [r.origin.line for r in recs] == [1 + 2 * i for i in range(len(docs))]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([".json", ".jsonl", ".csv", ".txt", ".parquet"]))
def test_arbitrary_bytes_give_records_or_a_located_data_error(raw: bytes, suffix: str) -> None:
    path = _write(suffix, raw)
    try:
        recs = read_records(path)
    except DataFormatError as exc:
        assert str(path) in str(exc)
    else:
        assert all(isinstance(r.data, dict) for r in recs)
