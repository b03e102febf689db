"""Read dataset files (JSON, JSONL, CSV, Parquet, TXT) into RawRecords that remember their line.

Every parse failure names the file and line, so a user can open the file and fix it: text that is
not UTF-8, malformed JSON, CSV rows that do not match the header, Parquet columns of the wrong type,
and a single record too large to be a training example (over ``MAX_RECORD_MB``). A UTF-8 byte-order
mark is accepted.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tunesmith.data.records import Origin, RawRecord
from tunesmith.utils.errors import DataFormatError

SUPPORTED = (".json", ".jsonl", ".csv", ".parquet", ".txt")
# One record this large is not a training example (cutoff_len keeps ~1k tokens of it), and tokenizing
# it costs minutes: refuse it with its place rather than stall.
MAX_RECORD_MB = 16
_MAX_RECORD_BYTES = MAX_RECORD_MB * 1024 * 1024


def decode_utf8(raw: bytes, path: Path, first_line: int = 1) -> str:
    """UTF-8 text (a leading BOM dropped), or a DataFormatError naming the line of the first bad byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + first_line
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DataFormatError(
            f"{path}:{line}:{column}: the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            hint="save it as UTF-8, e.g. `iconv -f GBK -t UTF-8 in.json > out.json` (use the file's real encoding)",
        ) from None


def read_text(path: Path) -> str:
    """A whole file as UTF-8 text, with located errors."""
    return decode_utf8(path.read_bytes(), path)


def _check_size(path: Path, line: int, size: int) -> None:
    if size > _MAX_RECORD_BYTES:
        raise DataFormatError(
            f"{path}:{line}: one record is {size / 1e6:.0f} MB; the limit is {MAX_RECORD_MB} MB per record",
            hint="split it into smaller records (training keeps only cutoff_len tokens of each anyway)",
        )


def _record_lines(text: str) -> list[int]:
    """1-based line where each top-level element of a JSON array starts (one pass over the text)."""
    lines: list[int] = []
    depth, line, in_str, esc = 0, 1, False, False
    for ch in text:
        if ch == "\n":
            line += 1
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
            if depth == 1:
                lines.append(line)
        elif ch in "[{":
            if depth == 1:
                lines.append(line)
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif depth == 1 and not ch.isspace() and ch != ",":
            if not lines or lines[-1] != line:
                lines.append(line)
    return lines


def read_json(path: Path) -> list[RawRecord]:
    text = read_text(path)
    stripped = text.lstrip()
    if not stripped:
        return []
    if stripped and stripped[0] == "{" and "\n" in stripped.strip():
        # Likely JSON Lines saved with a .json extension.
        try:
            return read_jsonl(path)
        except DataFormatError:
            pass
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}",
            hint="fix the syntax at that line (a missing comma or quote is the usual cause)",
        ) from exc
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise DataFormatError(f"{path}: the top level must be a list of records, got {type(data).__name__}")
    out = []
    lines = _record_lines(text) if len(data) > 1 or text.lstrip().startswith("[") else [1]
    starts = lines if len(lines) == len(data) else None
    for i, rec in enumerate(data):
        line = starts[i] if starts else i + 1
        if len(text) > _MAX_RECORD_BYTES:
            _check_size(path, line, len(json.dumps(rec, ensure_ascii=False).encode()))
        if not isinstance(rec, dict):
            raise DataFormatError(
                f"{path}:{line}: record {i + 1}: expected an object {{...}}, got {type(rec).__name__}"
            )
        out.append(RawRecord(rec, Origin(str(path), line)))
    return out


def read_jsonl(path: Path) -> list[RawRecord]:
    out = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            _check_size(path, lineno, len(raw))
            line = decode_utf8(raw, path, lineno)
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(
                    f"{path}:{lineno}: malformed JSON line: {exc.msg} (column {exc.colno})",
                    hint="each line must be one complete JSON object",
                ) from exc
            if not isinstance(rec, dict):
                raise DataFormatError(f"{path}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            out.append(RawRecord(rec, Origin(str(path), lineno)))
    return out


def read_csv(path: Path) -> list[RawRecord]:
    """CSV with a header row; quoted fields may hold commas, quotes ("") and newlines. Each record
    remembers the line it starts on, which is not its row number when fields span lines."""
    import io

    out: list[RawRecord] = []
    reader = csv.reader(io.StringIO(read_text(path), newline=""), strict=True)
    start = 1
    try:
        header = next(reader, None)
        if header is None:
            return out
        start = reader.line_num + 1
        for row in reader:
            if row and len(row) != len(header):
                raise DataFormatError(
                    f"{path}:{start}: the row has {len(row)} fields but the header has {len(header)} "
                    f"({', '.join(header)})",
                    hint='quote fields that contain commas: "a, b" (and double quotes inside them: "say ""hi""")',
                )
            if row:
                _check_size(path, start, sum(len(v) for v in row))
                out.append(RawRecord(dict(zip(header, row)), Origin(str(path), start)))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataFormatError(f"{path}:{start}: malformed CSV: {exc}",
                              hint='a field that starts with a quote must end with one; write "" for a quote '
                              "inside a quoted field") from None
    return out


def read_parquet(path: Path) -> list[RawRecord]:
    """Parquet: text columns must be strings (or lists / structs for conversations)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataFormatError(f"{path}: not a readable Parquet file: {exc}",
                              hint="write it with pandas.DataFrame.to_parquet or pyarrow") from None
    bad = [f"{f.name} ({f.type})" for f in table.schema
           if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)]
    if bad:
        raise DataFormatError(f"{path}: column(s) {', '.join(bad)} hold bytes, not text",
                              hint="store text columns as strings (decode them to UTF-8 before writing)")
    return [RawRecord(rec, Origin(str(path), i + 1)) for i, rec in enumerate(table.to_pylist())]


def read_txt(path: Path) -> list[RawRecord]:
    """Plain text: blank-line-separated documents become one record each."""
    text = read_text(path)
    out, buf, start = [], [], 1
    for lineno, line in enumerate(text.split("\n"), start=1):  # editors count "\n", not U+2028 etc.
        line = line.removesuffix("\r")
        if line.strip():
            if not buf:
                start = lineno
            buf.append(line)
        elif buf:
            out.append(_text_record(path, start, buf))
            buf = []
    if buf:
        out.append(_text_record(path, start, buf))
    return out


def _text_record(path: Path, start: int, lines: list[str]) -> RawRecord:
    text = "\n".join(lines)
    _check_size(path, start, len(text))
    return RawRecord({"text": text}, Origin(str(path), start))


READERS = {".json": read_json, ".jsonl": read_jsonl, ".csv": read_csv, ".parquet": read_parquet, ".txt": read_txt}


def read_records(path: str | Path) -> list[RawRecord]:
    """Read one file or every supported file in a folder."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in SUPPORTED)
        if not files:
            raise DataFormatError(f"{p}: folder has no data files ({', '.join(SUPPORTED)})")
        return [r for f in files for r in read_records(f)]
    if not p.exists():
        raise DataFormatError(f"{p}: file not found", hint="check the path or dataset_dir")
    reader = READERS.get(p.suffix.lower())
    if reader is None:
        raise DataFormatError(
            f"{p}: unsupported file type '{p.suffix}'", hint=f"use one of {', '.join(SUPPORTED)}"
        )
    records = reader(p)
    if not records:
        raise DataFormatError(f"{p}: the file has no records",
                              hint="add examples to it, or remove it from 'dataset' / dataset_info.json")
    return records
